"""Versions of a projection: rebuilding a read model without downtime.

Version ``n`` of projection ``name`` keeps its checkpoint under ``name@vn`` (version 1 under the
plain ``name``, as a projection without a version does) and its tables as ``table_vn`` (version
1: ``table``). Readers query the plain table names. Which version answers to them is recorded
in the read-model database, in ``eventuality_projection_versions``: the live version and its
tables. Switching over re-points the names in one transaction with that record: version 1's
tables are renamed to ``table_v1`` and each plain name becomes a view
(``CREATE VIEW table AS SELECT * FROM table_vn``), so a reader sees the old model or the new
one, never a mix or an empty one. Every batch of a versioned projection reads the record in its
own transaction (PostgreSQL: ``FOR SHARE``, which waits for a switch in progress) and a version
older than the live one stops there with :class:`~eventuality.ProjectionRetired`, whichever
process runs it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

from .errors import ProjectionRetired, ProjectionVersionError, StoreError
from .stores._named_sql import NamedTransaction
from .stores.base import EventStore

__all__ = ["RECORD_TABLE", "Versions", "versioned_name"]

RECORD_TABLE = "eventuality_projection_versions"

_CREATE_RECORD = (
    f"CREATE TABLE IF NOT EXISTS {RECORD_TABLE} "
    "(name TEXT PRIMARY KEY, live INTEGER NOT NULL, tables TEXT NOT NULL)"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
_SERIALISE = f"SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.{RECORD_TABLE}'))"

Switch = Literal["auto", "manual"]
SetUp = Callable[[NamedTransaction], Awaitable[None]]
_Record = tuple[int, tuple[str, ...]]


def versioned_name(name: str, version: int) -> str:
    """The checkpoint (and subscription) name of version ``version`` of projection ``name``."""
    return name if version == 1 else f"{name}@v{version}"


def _postgres(tx: NamedTransaction) -> bool:
    """Whether ``tx`` speaks PostgreSQL (row locks, advisory locks) rather than SQLite."""
    return getattr(tx, "paramstyle", "") == "dollar"


class Versions:
    """What a versioned :class:`~eventuality.Projection` knows of its versions: its own
    tables, and the record of which version is live, read and changed through the store."""

    def __init__(
        self,
        store: EventStore,
        name: str,
        version: int,
        tables: Iterable[str],
        switch: Switch,
    ) -> None:
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"a projection's version is an int from 1 up, not {version!r}")
        if "@" in name:
            raise ValueError(
                f"a versioned projection's name may not hold '@' (its versions are named "
                f"'name@v2', ...), not {name!r}"
            )
        if isinstance(tables, str):
            raise TypeError(f"tables is a list of table names, not the str {tables!r}")
        listed = tuple(tables)
        bad = [t for t in listed if not isinstance(t, str) or not _IDENTIFIER.fullmatch(t)]
        if bad or not listed or len(set(listed)) != len(listed):
            raise ValueError(
                f"projection {name!r} version {version} needs tables=[...]: the distinct names "
                "readers query, each a plain identifier (letters, digits, _, at most 48 "
                f"characters); got {list(listed)!r}"
            )
        if switch not in ("auto", "manual"):
            raise ValueError(f"switch must be 'auto' or 'manual', not {switch!r}")
        self.store = store
        self.name = name
        self.version = version
        self.tables = listed
        self.switch = switch
        self.checkpoint_name = versioned_name(name, version)
        self.live = False

    def table(self, name: str) -> str:
        """This version's table for ``name``, one of ``tables``: ``todo_list`` -> ``todo_list_v2``
        (version 1: ``todo_list``)."""
        if name not in self.tables:
            raise ValueError(
                f"{name!r} is not one of the tables of projection {self.name!r} "
                f"(tables={list(self.tables)!r}): name it there, so switching over re-points it"
            )
        return name if self.version == 1 else f"{name}_v{self.version}"

    async def live_version(self) -> int | None:
        """The version readers see now; ``None`` when no version was set up yet."""
        async with self.store.transaction() as tx:
            await tx.execute(_CREATE_RECORD)
            record = await self._record(tx, lock="")
        return None if record is None else record[0]

    async def set_up(self, tx: NamedTransaction, setup: SetUp | None) -> None:
        """Run the user's ``setup`` in ``tx``, unless this version is retired; the first
        version set up serves readers at once."""
        if _postgres(tx):
            await tx.execute(_SERIALISE)
        await tx.execute(_CREATE_RECORD)
        record = await self._record(tx, lock="UPDATE")
        if record is not None and record[0] > self.version:
            return  # retired: its first batch or pass says so; its tables may be views now
        if setup is not None:
            await setup(tx)
        if record is None:
            await self._repoint(tx, None)
            await self._write_record(tx, exists=False)
        self.live = record is None or record[0] == self.version

    async def check(self, tx: NamedTransaction) -> None:
        """At the start of each batch's transaction: stop here if a later version is live."""
        record = await self._record(tx, lock="SHARE")
        self._refuse_retired(record)
        self.live = record is not None and record[0] == self.version

    async def after_batch(self, tx: NamedTransaction, position: int) -> None:
        """``switch="auto"``: take over in the batch's own transaction, with its checkpoint,
        when the batch reaches the log's end."""
        if self.switch != "auto" or self.live or position < await self.store.last_position():
            return
        record = await self._record(tx, lock="UPDATE")
        self._refuse_retired(record)
        if record is None or record[0] != self.version:
            await self._repoint(tx, record)
            await self._write_record(tx, exists=record is not None)
        self.live = True  # the next batch's check() reads it again, should this roll back

    async def after_pass(self) -> None:
        """After each pass of a version not live: stop if a later one is; with
        ``switch="auto"``, take over (a pass with nothing to commit may end caught up)."""
        if self.live:
            return
        if self.switch == "auto":
            await self._switch(refuse_behind=False)
            return
        sql = f"SELECT live, tables FROM {RECORD_TABLE} WHERE name = :name"
        for live, _ in await self.store.query(sql, name=self.name):
            self._refuse_retired((int(live), ()))

    async def switch_over(self) -> bool:
        """Make this version the one readers see; False if it was already.

        :raises ProjectionVersionError: it has not caught up with the log's end.
        :raises ProjectionRetired: a later version is live.
        """
        return await self._switch(refuse_behind=True)

    async def _switch(self, *, refuse_behind: bool) -> bool:
        async with self.store.transaction() as tx:
            if _postgres(tx):
                await tx.execute(_SERIALISE)
            await tx.execute(_CREATE_RECORD)
            checkpoint = await tx.get_checkpoint(self.checkpoint_name) or 0
            record = await self._record(tx, lock="UPDATE")
            self._refuse_retired(record)
            if record is not None and record[0] == self.version:
                self.live = True
                return False
            end = await self.store.last_position()
            if checkpoint < end:
                if not refuse_behind:
                    return False
                raise ProjectionVersionError(
                    f"version {self.version} of projection {self.name!r} cannot switch over: it "
                    f"has handled the log up to position {checkpoint}, which ends at {end}. "
                    "Let it catch up first (await catch_up(), or run it), then switch over.",
                    name=self.name,
                    version=self.version,
                    live=None if record is None else record[0],
                )
            await self._repoint(tx, record)
            await self._write_record(tx, exists=record is not None)
        self.live = True
        return True

    async def retire(self) -> None:
        """Drop this version's tables, once a later version is live.

        :raises ProjectionVersionError: this version is live, or no later one is.
        """
        async with self.store.transaction() as tx:
            if _postgres(tx):
                await tx.execute(_SERIALISE)
            await tx.execute(_CREATE_RECORD)
            record = await self._record(tx, lock="UPDATE")
            if record is None or record[0] <= self.version:
                raise ProjectionVersionError(
                    f"version {self.version} of projection {self.name!r} cannot be retired: "
                    f"{'no version' if record is None else f'version {record[0]}'} is live. "
                    "Retire a version only after a later one has switched over.",
                    name=self.name,
                    version=self.version,
                    live=None if record is None else record[0],
                )
            for table in self.tables:
                await tx.execute(f"DROP TABLE IF EXISTS {table}_v{self.version}")

    async def _repoint(self, tx: NamedTransaction, record: _Record | None) -> None:
        """Let the plain table names answer with this version's tables, in ``tx``."""
        if record is not None:
            live, tables = record
            for table in tables:
                if live == 1:
                    await tx.execute(f"ALTER TABLE {table} RENAME TO {table}_v1")
                else:
                    await tx.execute(f"DROP VIEW IF EXISTS {table}")
        if self.version == 1:
            return
        for table in self.tables:
            try:
                async with tx.savepoint():
                    await tx.execute(
                        f"CREATE VIEW {table} AS SELECT * FROM {table}_v{self.version}"
                    )
            except StoreError as exc:
                raise ProjectionVersionError(
                    f"version {self.version} of projection {self.name!r} cannot make {table!r} "
                    f"a view of {table}_v{self.version}: {exc}. A table named {table!r} that no "
                    "version records is in the way (a projection kept it without a version?): "
                    "give that projection version=1 and tables=[...] and start it once, so it "
                    "records itself as live, then start this version again.",
                    name=self.name,
                    version=self.version,
                    live=None if record is None else record[0],
                ) from exc

    async def _write_record(self, tx: NamedTransaction, *, exists: bool) -> None:
        sql = (
            f"UPDATE {RECORD_TABLE} SET live = :live, tables = :tables WHERE name = :name"
            if exists
            else f"INSERT INTO {RECORD_TABLE} (name, live, tables) VALUES (:name, :live, :tables)"
        )
        await tx.execute(sql, name=self.name, live=self.version, tables=",".join(self.tables))

    async def _record(self, tx: NamedTransaction, *, lock: str) -> _Record | None:
        sql = f"SELECT live, tables FROM {RECORD_TABLE} WHERE name = :name"
        if lock and _postgres(tx):
            sql += f" FOR {lock}"
        found = await tx.fetchone(sql, name=self.name)
        if found is None:
            return None
        return int(found[0]), tuple(t for t in str(found[1]).split(",") if t)

    def _refuse_retired(self, record: _Record | None) -> None:
        if record is not None and record[0] > self.version:
            raise ProjectionRetired(self.name, self.version, record[0])
