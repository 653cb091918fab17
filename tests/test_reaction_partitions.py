"""A partitioned Reaction on every store: each partition commits its effects with its own
checkpoint, so every input event's effects exist once, whatever the partition that ran it."""

from collections import Counter

from eventuality import (
    Aggregate,
    Command,
    Event,
    EventStore,
    Flow,
    Reaction,
    Repository,
    SubscriptionRunner,
    partition_of,
    wait_for_subscriptions,
)
from tests.test_partitions import Numbered, fill


class Echoed(Event):
    stream: str
    n: int


class Echo(Aggregate):
    """One echo per input stream: its events are that stream's inputs, answered in order."""

    seen: tuple[int, ...] = ()

    @classmethod
    def create(cls, id: str, stream: str) -> "Echo":
        echo = cls(id=id)
        echo.record(Echoed(stream=stream, n=0))
        return echo

    def apply(self, event: Event) -> None:
        if isinstance(event, Echoed):
            self.seen = (*self.seen, event.n)


class AnswerInput(Command):
    stream: str
    n: int


def _flow(store: EventStore) -> Flow:
    echoes = Repository(Echo, store)
    flow = Flow(store=store)

    @flow.handles(AnswerInput)
    async def answer(command: AnswerInput) -> None:
        if command.n == 0:
            await echoes.add(id=f"echo-{command.stream}", stream=command.stream)
            return
        echo = await echoes.load(f"echo-{command.stream}")
        assert echo.seen == tuple(range(command.n)), "inputs of a stream come in order"
        echo.record(Echoed(stream=command.stream, n=command.n))

    return flow


def _reaction(store: EventStore, flow: Flow) -> Reaction:
    async def react(event: Numbered) -> None:
        await flow.dispatch(AnswerInput(stream=event.stream, n=event.n))

    return Reaction(store, "echo", react, flow=flow, event_types=[Numbered], partitions=4)


async def _answers(store: EventStore) -> Counter[tuple[str, int]]:
    answers = [
        (event.stream, event.n)
        async for event in store.read_all(event_types=[Echoed])
        if isinstance(event, Echoed)
    ]
    return Counter(answers)


async def test_a_partitioned_reaction_answers_every_input_once(store: EventStore) -> None:
    inputs = [e for e in await fill(store, streams=12, each=3) if isinstance(e, Numbered)]
    flow = _flow(store)

    handled = await _reaction(store, flow).catch_up()
    again = await _reaction(store, _flow(store)).catch_up()

    assert handled == len(inputs) == 36
    assert again == 0
    answers = await _answers(store)
    assert answers == Counter((f"s-{s}", n) for s in range(12) for n in range(3))
    checkpoints = [await store.get_checkpoint(f"echo#{i}/4") for i in range(4)]
    for index, checkpoint in enumerate(checkpoints):  # each moved past its own inputs
        mine = [e.position or 0 for e in inputs if partition_of(e.stream, 4) == index]
        assert checkpoint is not None
        assert checkpoint >= max(mine)


async def test_a_running_partitioned_reaction_is_waited_for_and_answers_once(
    store: EventStore,
) -> None:
    flow = _flow(store)
    reaction = _reaction(store, flow)

    async with SubscriptionRunner(reaction):
        for round in range(3):
            stored = await fill(store, streams=5, each=1, prefix=f"r{round}")
            await wait_for_subscriptions(store, ["echo"], stored[-1].position or 0, timeout=30)
            answers = await _answers(store)
            assert sum(answers.values()) == 5 * (round + 1)

    assert set((await _answers(store)).values()) == {1}
    assert reaction.statistics().handled == 15
