"""Conflicts in Flow.dispatch: creating a taken id fails at once, get-or-create races succeed,
and concurrent dispatches on one hot aggregate all succeed with the default retries."""

from pathlib import Path

import anyio
import pytest

from eventuality import (
    Aggregate,
    AggregateExists,
    AggregateNotFound,
    Command,
    ConcurrencyError,
    Event,
    EventStore,
    Flow,
    Repository,
    SQLiteEventStore,
)


class ConflictOpened(Event):
    pass


class ConflictDeposited(Event):
    amount: int


class ConflictAccount(Aggregate):
    balance: int = 0

    @classmethod
    def create(cls, id: str) -> "ConflictAccount":
        account = cls(id=id)
        account.record(ConflictOpened())
        return account

    def deposit(self, amount: int) -> None:
        self.record(ConflictDeposited(amount=amount))

    def apply(self, event: Event) -> None:
        if isinstance(event, ConflictDeposited):
            self.balance += event.amount


class ConflictOpen(Command):
    id: str


class ConflictDeposit(Command):
    id: str
    amount: int


class ConflictDepositTwice(Command):
    """Deposit ``amount`` through a nested dispatch, then once more."""

    id: str
    amount: int


async def _open(store: EventStore, account_id: str) -> None:
    await Repository(ConflictAccount, store).add(id=account_id)


def _creating_flow(store: EventStore, calls: list[str]) -> Flow:
    accounts = Repository(ConflictAccount, store)
    flow = Flow(store=store)

    @flow.handles(ConflictOpen)
    async def open_account(cmd: ConflictOpen) -> None:
        calls.append(cmd.id)
        await accounts.add(id=cmd.id)

    return flow


# --- creating an id that is taken --------------------------------------------------------------


async def test_creating_an_existing_aggregate_raises_aggregate_exists_without_a_retry(
    store: EventStore,
) -> None:
    await _open(store, "a")
    calls: list[str] = []
    flow = _creating_flow(store, calls)

    with pytest.raises(AggregateExists) as caught:
        await flow.dispatch(ConflictOpen(id="a"))

    assert calls == ["a"]
    assert (caught.value.stream_id, caught.value.actual_version) == ("ConflictAccount-a", 1)
    assert await store.stream_version("ConflictAccount-a") == 1


async def test_aggregate_exists_is_raised_by_add_so_the_handler_can_catch_it(
    store: EventStore,
) -> None:
    await _open(store, "a")
    accounts = Repository(ConflictAccount, store)
    flow = Flow(store=store)
    caught: list[AggregateExists] = []

    @flow.handles(ConflictOpen)
    async def open_unless_open(cmd: ConflictOpen) -> None:
        try:
            await accounts.add(id=cmd.id)
        except AggregateExists as exc:
            caught.append(exc)

    events = await flow.dispatch(ConflictOpen(id="a"))

    assert events == []
    assert [exc.stream_id for exc in caught] == ["ConflictAccount-a"]


async def test_adding_one_id_twice_in_one_dispatch_raises_aggregate_exists(
    store: EventStore,
) -> None:
    accounts = Repository(ConflictAccount, store)
    flow = Flow(store=store)

    @flow.handles(ConflictOpen)
    async def open_twice(cmd: ConflictOpen) -> None:
        await accounts.add(id=cmd.id)
        await accounts.add(id=cmd.id)

    with pytest.raises(AggregateExists):
        await flow.dispatch(ConflictOpen(id="a"))

    assert await store.last_position() == 0


async def test_a_creator_that_wins_before_the_commit_makes_the_retry_raise_aggregate_exists(
    store: EventStore,
) -> None:
    accounts = Repository(ConflictAccount, store)
    flow = Flow(store=store)
    calls = 0

    @flow.handles(ConflictOpen)
    async def open_account(cmd: ConflictOpen) -> None:
        nonlocal calls
        calls += 1
        await accounts.add(id=cmd.id)
        if calls == 1:
            await store.append("ConflictAccount-a", [ConflictOpened()], expected_version=0)

    with pytest.raises(AggregateExists):
        await flow.dispatch(ConflictOpen(id="a"))

    assert calls == 2
    assert await store.stream_version("ConflictAccount-a") == 1


async def test_a_lost_create_race_without_retries_raises_aggregate_exists(
    store: EventStore,
) -> None:
    accounts = Repository(ConflictAccount, store)
    flow = Flow(store=store, retries=0)

    @flow.handles(ConflictOpen)
    async def open_account(cmd: ConflictOpen) -> None:
        await accounts.add(id=cmd.id)
        await store.append("ConflictAccount-a", [ConflictOpened()], expected_version=0)

    with pytest.raises(AggregateExists):
        await flow.dispatch(ConflictOpen(id="a"))


async def test_concurrent_get_or_create_dispatches_all_succeed(store: EventStore) -> None:
    accounts = Repository(ConflictAccount, store)
    flow = Flow(store=store)
    contenders = 5
    created = 0
    everyone_added = anyio.Event()

    @flow.handles(ConflictDeposit)
    async def deposit_opening_if_needed(cmd: ConflictDeposit) -> None:
        nonlocal created
        try:
            account = await accounts.load(cmd.id)
        except AggregateNotFound:
            account = await accounts.add(id=cmd.id)
            created += 1
            if created == contenders:
                everyone_added.set()
            await everyone_added.wait()
        account.deposit(cmd.amount)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for amount in range(1, contenders + 1):
                tg.start_soon(flow.dispatch, ConflictDeposit(id="a", amount=amount))

    assert (await accounts.load("a")).balance == sum(range(1, contenders + 1))
    assert [type(e) for e in await store.read_stream("ConflictAccount-a")] == [
        ConflictOpened,
        *[ConflictDeposited] * contenders,
    ]


# --- hot aggregates --------------------------------------------------------------------------


class _FirstLoads:
    """Holds every first attempt after its load until ``contenders`` have loaded."""

    def __init__(self, contenders: int) -> None:
        self.contenders = contenders
        self.loaded = 0
        self.everyone = anyio.Event()

    async def wait(self) -> None:
        if not self.everyone.is_set():
            self.loaded += 1
            if self.loaded == self.contenders:
                self.everyone.set()
            await self.everyone.wait()


def _depositing_flow(store: EventStore, first_loads: _FirstLoads) -> Flow:
    """A flow whose first attempts all load the account before any of them commits."""
    accounts = Repository(ConflictAccount, store)
    flow = Flow(store=store)

    @flow.handles(ConflictDeposit)
    async def deposit(cmd: ConflictDeposit) -> None:
        account = await accounts.load(cmd.id)
        await first_loads.wait()
        account.deposit(cmd.amount)

    return flow


async def _deposit_concurrently(flows: list[Flow], contenders: int) -> list[list[Event]]:
    results: list[list[Event]] = []

    async def deposit(i: int) -> None:
        flow = flows[i % len(flows)]
        results.append(await flow.dispatch(ConflictDeposit(id="hot", amount=i)))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(1, contenders + 1):
                tg.start_soon(deposit, i)
    return results


async def test_fifty_concurrent_deposits_into_one_account_all_succeed_by_default(
    store: EventStore,
) -> None:
    await _open(store, "hot")
    contenders = 50
    flow = _depositing_flow(store, _FirstLoads(contenders))

    results = await _deposit_concurrently([flow], contenders)

    assert all(len(events) == 1 for events in results)
    assert len(results) == contenders
    account = await Repository(ConflictAccount, store).load("hot")
    assert (account.balance, account.version) == (sum(range(1, contenders + 1)), contenders + 1)


async def test_concurrent_deposits_through_two_flows_on_one_store_all_succeed(
    store: EventStore,
) -> None:
    await _open(store, "hot")
    contenders = 50
    first_loads = _FirstLoads(contenders)
    flows = [_depositing_flow(store, first_loads) for _ in range(2)]

    results = await _deposit_concurrently(flows, contenders)

    assert len(results) == contenders
    account = await Repository(ConflictAccount, store).load("hot")
    assert (account.balance, account.version) == (sum(range(1, contenders + 1)), contenders + 1)


async def test_concurrent_deposits_through_two_store_objects_on_one_file_all_succeed(
    tmp_path: Path,
) -> None:
    contenders = 20
    async with (
        SQLiteEventStore(tmp_path / "events.db") as first,
        SQLiteEventStore(tmp_path / "events.db") as second,
    ):
        await _open(first, "hot")
        first_loads = _FirstLoads(contenders)
        flows = [_depositing_flow(s, first_loads) for s in (first, second)]
        for flow in flows:
            flow.retries = contenders

        results = await _deposit_concurrently(flows, contenders)

        assert len(results) == contenders
        balance = (await Repository(ConflictAccount, first).load("hot")).balance
        assert balance == sum(range(1, contenders + 1))


async def test_conflicts_beyond_the_retries_still_raise_concurrency_error(
    store: EventStore,
) -> None:
    await _open(store, "hot")
    accounts = Repository(ConflictAccount, store)
    flow = Flow(store=store, retries=2)
    calls = 0

    @flow.handles(ConflictDeposit)
    async def deposit_while_someone_else_does(cmd: ConflictDeposit) -> None:
        nonlocal calls
        calls += 1
        (await accounts.load(cmd.id)).deposit(cmd.amount)
        await store.append("ConflictAccount-hot", [ConflictDeposited(amount=0)])

    with pytest.raises(ConcurrencyError) as caught:
        await flow.dispatch(ConflictDeposit(id="hot", amount=5))

    assert not isinstance(caught.value, AggregateExists)
    assert calls == 3


async def test_a_retry_dispatching_a_command_on_its_locked_stream_does_not_deadlock(
    store: EventStore,
) -> None:
    await _open(store, "hot")
    accounts = Repository(ConflictAccount, store)
    flow = Flow(store=store)
    calls = {"outer": 0, "inner": 0}

    async def deposit_after_someone_else_the_first_time(cmd: ConflictDeposit, key: str) -> None:
        calls[key] += 1
        account = await accounts.load(cmd.id)
        if calls[key] == 1:
            await store.append("ConflictAccount-hot", [ConflictDeposited(amount=0)])
        account.deposit(cmd.amount)

    @flow.handles(ConflictDeposit)
    async def inner(cmd: ConflictDeposit) -> None:
        await deposit_after_someone_else_the_first_time(cmd, "inner")

    @flow.handles(ConflictDepositTwice)
    async def outer(cmd: ConflictDepositTwice) -> None:
        if calls["outer"]:
            await flow.dispatch(ConflictDeposit(id=cmd.id, amount=cmd.amount))
        await deposit_after_someone_else_the_first_time(
            ConflictDeposit(id=cmd.id, amount=cmd.amount), "outer"
        )

    with anyio.fail_after(10):
        await flow.dispatch(ConflictDepositTwice(id="hot", amount=7))

    assert calls == {"outer": 2, "inner": 2}
    assert (await accounts.load("hot")).balance == 14


class ConflictTransfer(Command):
    source: str
    target: str
    amount: int


def _transfer_flow(store: EventStore) -> Flow:
    accounts = Repository(ConflictAccount, store)
    flow = Flow(store=store)

    @flow.handles(ConflictTransfer)
    async def transfer(cmd: ConflictTransfer) -> None:
        source = await accounts.load(cmd.source)
        target = await accounts.load(cmd.target)
        source.deposit(-cmd.amount)
        target.deposit(cmd.amount)

    return flow


async def test_concurrent_transfers_between_few_accounts_all_commit_exactly_once(
    store: EventStore,
) -> None:
    names = ["a", "b", "c"]
    for name in names:
        await _open(store, name)
    flow = _transfer_flow(store)
    flow.retries = 10  # two streams per command: more room than one hot stream needs

    async with anyio.create_task_group() as group:
        for n in range(60):
            command = ConflictTransfer(source=names[n % 3], target=names[(n + 1) % 3], amount=1)
            group.start_soon(flow.dispatch, command)

    accounts = [await Repository(ConflictAccount, store).load(n) for n in names]
    assert [account.balance for account in accounts] == [0, 0, 0]
    assert [account.version for account in accounts] == [41, 41, 41]


async def test_a_retry_cancelled_while_it_waits_for_a_stream_lock_leaves_cleanly() -> None:
    from eventuality import InMemoryEventStore
    from eventuality.flow import _stream_locks

    store = InMemoryEventStore()
    for name in ("a", "b"):
        await _open(store, name)
    accounts = Repository(ConflictAccount, store)
    flow = Flow(store=store)
    runs = {"hold-b": 0, "touch-a-then-b": 0}
    holding_a = anyio.Event()
    holding_b = anyio.Event()
    let_go = anyio.Event()

    @flow.handles(ConflictDeposit)
    async def hold_b(cmd: ConflictDeposit) -> None:
        runs["hold-b"] += 1
        account = await accounts.load("b")
        if runs["hold-b"] == 1:
            await store.append("ConflictAccount-b", [ConflictDeposited(amount=0)])
        else:  # the retry holds b's lock
            holding_b.set()
            await let_go.wait()
        account.deposit(cmd.amount)

    @flow.handles(ConflictTransfer)
    async def touch_a_then_b(cmd: ConflictTransfer) -> None:
        runs["touch-a-then-b"] += 1
        a = await accounts.load("a")
        b = await accounts.load("b")
        if runs["touch-a-then-b"] == 1:  # conflict on a: the retry holds a's lock
            await store.append("ConflictAccount-a", [ConflictDeposited(amount=0)])
        else:  # then on b: it lets go of a and waits for b, held by the other dispatch
            holding_a.set()
            await holding_b.wait()
            await store.append("ConflictAccount-b", [ConflictDeposited(amount=0)])
        a.deposit(-cmd.amount)
        b.deposit(cmd.amount)

    def waiting_for_b() -> bool:
        lock = _stream_locks.get(store, {}).get("ConflictAccount-b")
        return lock is not None and lock._users == 2

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            scope = anyio.CancelScope()
            group.start_soon(_dispatch_in, scope, flow)
            await holding_a.wait()
            group.start_soon(flow.dispatch, ConflictDeposit(id="b", amount=5))
            while not waiting_for_b():
                await anyio.sleep(0)
            scope.cancel()
            let_go.set()

    assert runs["touch-a-then-b"] == 2
    assert (await accounts.load("b")).balance == 5
    assert dict(_stream_locks.get(store, {})) == {}


async def _dispatch_in(scope: anyio.CancelScope, flow: Flow) -> None:
    with scope:
        await flow.dispatch(ConflictTransfer(source="a", target="b", amount=1))


class ConflictOuter(Command):
    mine: str
    other: str


async def test_retries_whose_nested_dispatches_conflict_on_each_others_streams_finish() -> None:
    from eventuality import InMemoryEventStore

    store = InMemoryEventStore()
    for name in ("a", "b"):
        await _open(store, name)
    accounts = Repository(ConflictAccount, store)
    flow = Flow(store=store, retries=20)  # nested dispatches take no locks: they may conflict more
    outer_runs: dict[str, int] = {"a": 0, "b": 0}
    inner_runs: dict[str, int] = {"a": 0, "b": 0}
    nested_commits: dict[str, int] = {"a": 0, "b": 0}
    retrying = 0
    both_retrying = anyio.Event()

    async def someone_else_writes(name: str) -> None:
        await store.append(f"ConflictAccount-{name}", [ConflictDeposited(amount=0)])

    @flow.handles(ConflictDeposit)
    async def inner(cmd: ConflictDeposit) -> None:
        inner_runs[cmd.id] += 1
        account = await accounts.load(cmd.id)
        if inner_runs[cmd.id] == 1:
            await someone_else_writes(cmd.id)
        account.deposit(cmd.amount)

    @flow.handles(ConflictOuter)
    async def outer(cmd: ConflictOuter) -> None:
        nonlocal retrying
        outer_runs[cmd.mine] += 1
        account = await accounts.load(cmd.mine)
        if outer_runs[cmd.mine] == 1:
            await someone_else_writes(cmd.mine)
        else:  # each retry holds its own stream's lock, then dispatches on the other's
            retrying += 1
            if retrying == 2:
                both_retrying.set()
            await both_retrying.wait()
            await flow.dispatch(ConflictDeposit(id=cmd.other, amount=1))
            nested_commits[cmd.other] += 1
        account.deposit(10)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(flow.dispatch, ConflictOuter(mine="a", other="b"))
            group.start_soon(flow.dispatch, ConflictOuter(mine="b", other="a"))

    balances = {n: (await accounts.load(n)).balance for n in ("a", "b")}
    assert balances == {n: 10 + nested_commits[n] for n in ("a", "b")}
    assert min(nested_commits.values()) >= 1
