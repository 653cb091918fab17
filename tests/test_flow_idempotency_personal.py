"""Idempotent commands whose events carry personal data: the key, the keys of the subjects and
the sealed events go in one transaction, and a repeat returns the events opened (or masked once
the subject is forgotten)."""

from typing import Annotated

import anyio

from eventuality import Aggregate, Command, Event, EventStore, Flow, PersonalData, Repository


class MemberJoined(Event):
    __event_type__ = "tests.idempotency.MemberJoined"
    __personal_subject__ = "aggregate_id"
    email: Annotated[str, PersonalData]


class Member(Aggregate):
    email: str = ""

    @classmethod
    def create(cls, id: str, email: str) -> "Member":
        member = cls(id=id)
        member.record(MemberJoined(email=email))
        return member

    def apply(self, event: Event) -> None:
        if isinstance(event, MemberJoined):
            self.email = event.email


class Join(Command):
    member: str
    email: str


def _flow(store: EventStore, runs: list[Join]) -> Flow:
    members = Repository(Member, store)
    flow = Flow(store=store)

    @flow.handles(Join)
    async def join(command: Join) -> None:
        runs.append(command)
        await members.add(id=command.member, email=command.email)

    return flow


async def test_a_repeat_returns_personal_data_opened_then_masked_once_forgotten(
    store: EventStore,
) -> None:
    runs: list[Join] = []
    flow = _flow(store, runs)

    first = await flow.dispatch(Join(member="m1", email="ann@example.org"), idempotency_key="j1")
    again = await flow.dispatch(Join(member="m1", email="ann@example.org"), idempotency_key="j1")

    assert len(runs) == 1
    assert again == first
    assert [e.email for e in again] == ["ann@example.org"]  # type: ignore[attr-defined]
    assert await store.forget("m1")
    forgotten = await flow.dispatch(
        Join(member="m1", email="ann@example.org"), idempotency_key="j1"
    )
    assert len(runs) == 1
    assert [e.email for e in forgotten] == ["[erased]"]  # type: ignore[attr-defined]
    assert [e.event_id for e in forgotten] == [e.event_id for e in first]


async def test_concurrent_repeats_with_personal_data_commit_once(store: EventStore) -> None:
    runs: list[Join] = []
    flow = _flow(store, runs)
    results: list[list[Event]] = []

    async def dispatch() -> None:
        command = Join(member="m2", email="bo@example.org")
        results.append(await flow.dispatch(command, idempotency_key="j2"))

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(dispatch)

    assert len({tuple(e.event_id for e in result) for result in results}) == 1
    assert len(await store.read_stream("Member-m2")) == 1
    assert [e.email for e in results[0]] == ["bo@example.org"]  # type: ignore[attr-defined]
