"""eventuality.testing.given: aggregate tests in one line, and failures that show a diff."""

import pytest

from eventuality.testing import given
from tests.domain import Todo, TodoCompleted, TodoCreated, TodoRenamed


def complete_once(todo: Todo) -> None:
    """A stricter action than Todo.complete, to have a domain error to test."""
    if todo.completed:
        raise ValueError(f"todo {todo.id} is completed already")
    todo.complete()


def test_then_passes_when_the_action_records_the_expected_events() -> None:
    scenario = given(Todo, TodoCreated(description="x"), id="t1")

    outcome = scenario.when(lambda todo: todo.complete())

    outcome.then(TodoCompleted())


def test_then_ignores_ids_and_times_of_the_expected_events() -> None:
    expected = TodoRenamed(description="y")

    outcome = given(Todo, TodoCreated(description="x")).when(lambda todo: todo.rename("y"))

    assert outcome.events[0].event_id != expected.event_id
    outcome.then(expected)


def test_then_without_events_passes_when_nothing_was_recorded() -> None:
    scenario = given(Todo, TodoCreated(description="x"), TodoCompleted())

    outcome = scenario.when(lambda todo: todo.complete())

    outcome.then()


def test_then_fails_with_a_diff_of_expected_and_recorded_events() -> None:
    outcome = given(Todo, TodoCreated(description="x")).when(lambda todo: todo.rename("y"))

    with pytest.raises(AssertionError) as failure:
        outcome.then(TodoRenamed(description="z"), TodoCompleted())

    assert str(failure.value) == (
        "recorded events differ from the expected (- expected, + actual):\n"
        "- TodoRenamed(description='z')\n"
        "- TodoCompleted()\n"
        "+ TodoRenamed(description='y')"
    )


def test_then_without_events_fails_when_something_was_recorded() -> None:
    outcome = given(Todo, TodoCreated(description="x")).when(lambda todo: todo.complete())

    with pytest.raises(AssertionError, match=r"\+ TodoCompleted\(\)"):
        outcome.then()


def test_a_creation_is_checked_by_the_new_aggregates_recorded_events() -> None:
    outcome = given(Todo).when(lambda _: Todo.create(id="t1", description="x"))

    outcome.then(TodoCreated(description="x"))


def test_given_events_are_applied_before_the_action() -> None:
    scenario = given(Todo, TodoCreated(description="x"), TodoRenamed(description="y"), id="t1")

    outcome = scenario.when(lambda todo: None)

    outcome.then_state(lambda todo: (todo.id, todo.description, todo.version) == ("t1", "y", 2))


def test_then_state_fails_showing_the_state_when_the_check_returns_false() -> None:
    outcome = given(Todo, TodoCreated(description="x"), id="t1").when(lambda todo: None)

    with pytest.raises(AssertionError) as failure:
        outcome.then_state(lambda todo: todo.completed)

    assert str(failure.value) == (
        "the state check returned False for "
        "Todo(id='t1', version=1, description='x', completed=False)"
    )


def test_then_raises_passes_on_the_expected_error_and_message() -> None:
    scenario = given(Todo, TodoCreated(description="x"), TodoCompleted(), id="t1")

    outcome = scenario.when(complete_once)

    outcome.then_raises(ValueError, match="t1 is completed already")


def test_then_raises_fails_naming_what_was_recorded_instead() -> None:
    outcome = given(Todo, TodoCreated(description="x")).when(complete_once)

    with pytest.raises(AssertionError) as failure:
        outcome.then_raises(ValueError)

    assert str(failure.value) == (
        "expected ValueError to be raised, but the action recorded TodoCompleted()"
    )


def test_then_raises_fails_when_the_message_does_not_match() -> None:
    outcome = given(Todo, TodoCreated(description="x"), TodoCompleted()).when(complete_once)

    with pytest.raises(AssertionError, match="does not match 'archived'"):
        outcome.then_raises(ValueError, match="archived")


def test_then_raises_fails_on_another_error_type() -> None:
    outcome = given(Todo, TodoCreated(description="x"), TodoCompleted()).when(complete_once)

    with pytest.raises(AssertionError, match="expected KeyError to be raised, but got ValueError"):
        outcome.then_raises(KeyError)


def test_then_fails_naming_the_error_the_action_raised() -> None:
    outcome = given(Todo, TodoCreated(description="x"), TodoCompleted()).when(complete_once)

    with pytest.raises(AssertionError) as failure:
        outcome.then(TodoCompleted())

    assert "the action raised ValueError: todo test-1 is completed already" in str(failure.value)
    assert isinstance(failure.value.__cause__, ValueError)


def test_given_refuses_what_is_not_an_event() -> None:
    with pytest.raises(TypeError, match="Event instances"):
        given(Todo, {"description": "x"})  # type: ignore[arg-type]
