"""The unit of work a dispatch runs in: which aggregates it touched, committed together.

Repositories find the active unit of work through a context variable, so a handler needs no
extra argument, and tasks the handler starts (which copy the context) join the same one.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any, Protocol

from .aggregate import Aggregate
from .errors import ConcurrencyError
from .stores.base import EventStore

__all__ = ["UnitOfWork", "active_unit_of_work"]


class _Snapshotter(Protocol):
    async def snapshot_if_due(self, aggregate: Any, appended: int) -> None: ...


_current: ContextVar[UnitOfWork | None] = ContextVar("eventuality_unit_of_work", default=None)


class UnitOfWork:
    """Aggregates loaded or added on one store during one dispatch, keyed by stream.

    It is also an identity map: loading the same aggregate twice in one dispatch returns the same
    instance, so two changes to it can never be written as two conflicting commits.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._aggregates: dict[str, Aggregate] = {}
        self._repositories: dict[str, _Snapshotter] = {}
        self.closed = False
        self._token: Token[UnitOfWork | None] | None = None

    def get(self, stream_id: str) -> Aggregate | None:
        return self._aggregates.get(stream_id)

    def track(
        self, aggregate: Aggregate, repository: _Snapshotter | None = None, *, new: bool = False
    ) -> None:
        """Take ``aggregate`` into the commit. ``new``: it was just created by ``add``.

        ``repository`` is asked after the commit whether a snapshot is due.
        """
        stream_id = aggregate.stream_id
        known = self._aggregates.get(stream_id)
        if known is None:
            self._aggregates[stream_id] = aggregate
            if repository is not None:
                self._repositories[stream_id] = repository
        elif known is not aggregate:
            if new:
                raise ConcurrencyError(stream_id, 0, known.version)
            raise ValueError(
                f"two different instances of stream {stream_id!r} in one dispatch; their events "
                "would conflict. Load the aggregate once (Repository.load returns the same "
                "instance within a dispatch) and change that one."
            )

    @property
    def aggregates(self) -> list[Aggregate]:
        """Tracked aggregates in the order they joined."""
        return list(self._aggregates.values())

    def repository_of(self, aggregate: Aggregate) -> _Snapshotter | None:
        """The repository that loaded or added ``aggregate``."""
        return self._repositories.get(aggregate.stream_id)

    def active(self) -> UnitOfWork:
        """Use as ``with uow.active():`` to make this the unit of work that repositories on
        ``store`` join, for the block's duration."""
        return self

    def __enter__(self) -> UnitOfWork:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Tasks the handler started keep this context; once the handler has returned they
        # must write for themselves, not into a unit of work that was already committed.
        self.closed = True
        if self._token is not None:
            _current.reset(self._token)


def active_unit_of_work(store: EventStore) -> UnitOfWork | None:
    """The unit of work of the running dispatch, if it works on ``store``."""
    uow = _current.get()
    return uow if uow is not None and uow.store is store and not uow.closed else None
