"""Aggregate: decides, records events, and evolves its state only by applying them."""

import copy
import decimal
import enum
import hashlib
import json
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel, PrivateAttr, PydanticUserError

from .messages import Event, evolve

__all__ = ["Aggregate", "Uncommitted", "state_fingerprint"]

# Values of these types cannot be changed in place, so a rollback need not copy them.
_IMMUTABLE = (
    str,
    int,
    float,
    bool,
    bytes,
    type(None),
    decimal.Decimal,
    uuid.UUID,
    datetime,
    date,
    time,
    timedelta,
    enum.Enum,
    frozenset,
)
_IMMUTABLE_TYPES = frozenset(_IMMUTABLE) - {enum.Enum}


class Uncommitted(NamedTuple):
    """An aggregate's collected events and the version its stream must be at for them."""

    events: tuple[Event, ...]
    expected_version: int


class Aggregate(BaseModel):
    """A consistency boundary rebuilt from its own stream of events.

    State lives in the subclass's annotated fields, each with a default (replay starts from the
    defaults). Actions call :meth:`record`; :meth:`apply` is the only place state changes.

    Snapshots remember the shape of the state that wrote them (see :func:`state_fingerprint`)
    and are skipped, with a replay from the first event, once the fields change. Raise
    ``__snapshot_version__`` when :meth:`apply` changes what it computes from the same events
    (a fix in a running total, say): no schema shows that, so only you can tell.
    """

    aggregate_type: ClassVar[str] = "Aggregate"
    __snapshot_version__: ClassVar[int] = 1

    id: str
    version: int = 0

    _pending: list[Event] = PrivateAttr(default_factory=list)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "aggregate_type" not in cls.__dict__:
            cls.aggregate_type = cls.__name__
        for name, field in cls.model_fields.items():
            if name != "id" and field.is_required():
                raise TypeError(
                    f"{cls.__qualname__}.{name} has no default. Aggregate state is rebuilt by "
                    f"applying events to a fresh instance, so every state field needs one "
                    f"(for example `{name}: ... | None = None`)."
                )

    @property
    def stream_id(self) -> str:
        """The name of this aggregate's stream: ``f"{aggregate_type}-{id}"``."""
        return f"{self.aggregate_type}-{self.id}"

    @property
    def pending_events(self) -> tuple[Event, ...]:
        """Events recorded and not yet saved, oldest first."""
        return tuple(self._pending_list())

    def record(self, event: Event) -> Event:
        """Stamp ``event`` as this aggregate's next, apply it and keep it pending.

        If :meth:`apply` raises, the state and version are restored and nothing is recorded.
        """
        if not isinstance(event, Event):
            raise TypeError(f"record() takes an Event instance, not {type(event).__name__}")
        stamped = evolve(
            event,
            {
                "aggregate_id": self.id,
                "aggregate_version": self.version + 1,
                "occurred_at": datetime.now(UTC),
            },
        )
        state = self.__dict__
        saved = _copied(state)
        try:
            self.apply(stamped)
        except BaseException:
            state.clear()
            state.update(saved)
            raise
        state["version"] = self.version + 1
        self._pending_list().append(stamped)
        return stamped

    def apply(self, event: Event) -> None:
        """Evolve state by one event. Runs on record and on replay: change state, never decide."""
        raise NotImplementedError(
            f"{type(self).__qualname__} must define apply(self, event) to evolve its state"
        )

    def collect_events(self) -> Uncommitted:
        """Take out the pending events, with the version the stream must be at for them to
        follow it: the ``expected_version`` of their append. For whatever writes them (a
        repository, a dispatch); once collected they are no longer pending, and if the write
        fails the aggregate is stale: load it again."""
        pending = self._pending_list()
        collected = Uncommitted(tuple(pending), self.version - len(pending))
        pending.clear()
        return collected

    def replay(self, events: Iterable[Event]) -> None:
        """Apply stored events of this aggregate's stream, oldest first, each the next version:
        how a repository rebuilds it. Nothing becomes pending.

        :raises ValueError: an event is not the next version (a gap, or no version at all).
        """
        state = self.__dict__
        for event in events:
            if event.aggregate_version != state["version"] + 1:
                raise ValueError(
                    f"cannot replay {event.event_type} with aggregate_version="
                    f"{event.aggregate_version!r} onto {self.stream_id} at version "
                    f"{state['version']}: replay takes the stream's events in order, from the "
                    "next version on"
                )
            self.apply(event)
            state["version"] = event.aggregate_version

    def _savepoint(self) -> Callable[[], None]:
        """A function that puts state, version and pending events back as they are now: how a
        command that fails inside a reaction's unit of work leaves nothing behind."""
        state = self.__dict__
        saved = _copied(state)
        pending = self._pending_list()
        count = len(pending)

        def restore() -> None:
            state.clear()
            state.update(saved)
            del pending[count:]

        return restore

    def _pending_list(self) -> list[Event]:
        # Straight from pydantic's private storage: `self._pending` goes through __getattr__.
        pending: list[Event] = self.__pydantic_private__["_pending"]  # type: ignore[index]
        return pending


def _copied(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with every value that could be changed in place deep-copied."""
    saved = state.copy()
    for key, value in saved.items():
        if type(value) not in _IMMUTABLE_TYPES and not isinstance(value, _IMMUTABLE):
            saved[key] = copy.deepcopy(value)
    return saved


_fingerprints: weakref.WeakKeyDictionary[type[Aggregate], str] = weakref.WeakKeyDictionary()


def state_fingerprint(cls: type[Aggregate]) -> str:
    """A short hash of ``cls``'s state schema, computed once per class.

    Any change in the fields (names, types, defaults, descriptions) changes it, so a snapshot
    never loads into another shape of state than the one that wrote it. A class whose JSON
    schema cannot be generated falls back to its field names and annotations.
    """
    fingerprint = _fingerprints.get(cls)
    if fingerprint is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                schema = json.dumps(cls.model_json_schema(), sort_keys=True, default=repr)
        except (PydanticUserError, Warning, TypeError, ValueError):
            schema = repr([(name, repr(f.annotation)) for name, f in cls.model_fields.items()])
        fingerprint = hashlib.blake2b(schema.encode(), digest_size=8).hexdigest()
        _fingerprints[cls] = fingerprint
    return fingerprint
