"""The Todo domain the tests share (event type names are global, so they are defined once)."""

from eventuality import Aggregate, Command, Event


class TodoCreated(Event):
    description: str


class TodoRenamed(Event):
    description: str


class TodoCompleted(Event):
    pass


class Todo(Aggregate):
    description: str | None = None
    completed: bool = False

    @classmethod
    def create(cls, id: str, description: str) -> "Todo":
        todo = cls(id=id)
        todo.record(TodoCreated(description=description))
        return todo

    def rename(self, description: str) -> list[Event]:
        if description == self.description:
            return []
        return [self.record(TodoRenamed(description=description))]

    def complete(self) -> list[Event]:
        if self.completed:
            return []
        return [self.record(TodoCompleted())]

    def apply(self, event: Event) -> None:
        match event:
            case TodoCreated(description=description) | TodoRenamed(description=description):
                self.description = description
            case TodoCompleted():
                self.completed = True


class CreateTodo(Command):
    id: str
    description: str


class RenameTodo(Command):
    id: str
    description: str


class MarkAsCompleted(Command):
    id: str
