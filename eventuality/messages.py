"""Events and commands: frozen pydantic models, the registry of event types, upcasters.

An event class registers itself under its ``event_type`` and its former names
(``__event_aliases__``) when it is defined. Stored events are turned back into objects only
through that registry: a stored name never causes an import. Upcasters migrate stored payloads
written by an older ``__event_version__`` of a class; the registry and the checks of upcaster
chains live in ``_event_types``.
"""

import inspect
import math
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticSerializationError

from ._event_types import Upcaster as Upcaster
from ._event_types import _registry as _registry
from ._event_types import event_class as event_class
from ._event_types import names_of_type, register_class
from ._event_types import register_upcaster as register_upcaster
from ._event_types import upcast_payload as upcast_payload
from ._event_types import upcaster as upcaster
from .personal import declare_personal_data

__all__ = [
    "TRUSTED_ENVELOPE",
    "Command",
    "Event",
    "event_class",
    "event_type_names",
    "register_upcaster",
    "upcaster",
]

_EVENT_ENVELOPE = frozenset(
    {"event_id", "aggregate_id", "aggregate_version", "position", "occurred_at", "metadata"}
)
_EVENT_RESERVED = _EVENT_ENVELOPE | {"event_type", "payload"}
_COMMAND_RESERVED = frozenset({"command_id", "metadata"})
_TRUSTED_KEY = "eventuality_trusted_envelope"
TRUSTED_ENVELOPE: dict[str, Any] = {_TRUSTED_KEY: True}
"""Validation context that lets a command's envelope come from the input (trusted sources)."""


def _finite(metadata: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """Refuse NaN and infinity, which JSON cannot hold (PostgreSQL refuses them; SQLite and the
    memory store would keep them and hand them back): fail when the message is built."""
    for value in metadata.values():
        if type(value) is not str and _non_finite(value):
            raise ValueError(
                "metadata must hold JSON numbers only: NaN and infinity are not JSON. Store such "
                "a value as a string (e.g. 'NaN') or leave it out"
            )
    return metadata


def _non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


JsonMetadata = Annotated[dict[str, JsonValue], AfterValidator(_finite)]
"""Metadata of events and commands: a JSON object, finite numbers only."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _TimeOrderedIds:
    """Version 7 UUIDs (RFC 9562): a millisecond timestamp, then 74 random bits.

    Ids made one after another sort one after another, so the stores' unique index on event
    ids grows at its end instead of at random places: half the cost per append on SQLite. The
    random bits come from the OS's CSPRNG, read 4 KiB at a time (``uuid.uuid4()`` makes a system
    call per id); the buffer is dropped in a forked child, so parent and child never share ids.
    """

    _SIZE = 4090
    _VERSION_AND_VARIANT = (7 << 76) | (0b10 << 62)
    _RANDOM_BITS = ~((0xF << 76) | (0b11 << 62)) & ((1 << 80) - 1)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._buffer = b""
        self._offset = self._SIZE

    def __call__(self) -> uuid.UUID:
        with self._lock:
            if self._offset >= self._SIZE:
                self._buffer, self._offset = os.urandom(self._SIZE), 0
            start = self._offset
            self._offset = start + 10
            random = int.from_bytes(self._buffer[start : start + 10])
        milliseconds = time.time_ns() // 1_000_000
        value = (milliseconds << 80) | (random & self._RANDOM_BITS) | self._VERSION_AND_VARIANT
        made = object.__new__(uuid.UUID)
        object.__setattr__(made, "int", value)
        object.__setattr__(made, "is_safe", uuid.SafeUUID.unknown)
        return made


new_id = _TimeOrderedIds()


def _refuse_reserved(cls: type, reserved: frozenset[str], kind: str) -> None:
    """Refuse, at class definition, a subclass that declares a field the framework fills."""
    declared = set(inspect.get_annotations(cls)) | set(cls.__dict__)
    for name in sorted(declared & reserved):
        raise TypeError(
            f"{cls.__qualname__} declares {name!r}, a name reserved by eventuality for every "
            f"{kind} ({', '.join(sorted(reserved))}). Rename the field, for example to "
            f"'{cls.__name__.lower()}_{name}'."
        )


class Event(BaseModel):
    """Something that happened. Subclass it; the subclass's own fields are the payload.

    The envelope fields (``event_id``, ``aggregate_id``, ``aggregate_version``, ``position``,
    ``occurred_at``, ``metadata``) are filled by the framework.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

    event_type: ClassVar[str] = "Event"
    __event_version__: ClassVar[int] = 1
    __event_aliases__: ClassVar[tuple[str, ...]] = ()
    """Names events of this class were stored under before (a rename, a move): they load as it."""
    __event_first_version__: ClassVar[int] = 1
    """The oldest version ever stored: upcasters are needed from here up to the current one."""
    __event_upcasters__: ClassVar[Mapping[int, Upcaster]] = {}
    """Upcasters by the version they read: checked as one chain when the class is defined."""
    __payload_fields__: ClassVar[frozenset[str]] = frozenset()
    __payload_include__: ClassVar[dict[str, bool]] = {}
    __personal_subject__: ClassVar[str | None] = None
    __personal_fields__: ClassVar[dict[str, Any]] = {}

    event_id: uuid.UUID = Field(default_factory=new_id)
    aggregate_id: str | None = None
    aggregate_version: int | None = None
    position: int | None = None
    occurred_at: datetime = Field(default_factory=_utcnow)
    metadata: JsonMetadata = Field(default_factory=dict)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        _refuse_reserved(cls, _EVENT_RESERVED, "event")
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.event_type = cls.__dict__.get("__event_type__", cls.__name__)
        if not isinstance(cls.event_type, str) or not cls.event_type or "\x00" in cls.event_type:
            raise TypeError(
                f"{cls.__qualname__}.__event_type__ must be a non-empty string without NUL"
            )
        cls.__payload_fields__ = frozenset(cls.model_fields) - _EVENT_ENVELOPE
        cls.__payload_include__ = dict.fromkeys(cls.__payload_fields__, True)
        cls.__personal_fields__ = declare_personal_data(cls, cls.__payload_fields__)
        if any(_may_hold_bytes(cls.model_fields[n].annotation) for n in cls.__payload_fields__):
            _check_json_when_built(cls)
        register_class(cls)

    def __hash__(self) -> int:
        return hash(self.event_id)

    @property
    def payload(self) -> dict[str, Any]:
        """The subclass's own fields, without the envelope."""
        return self.model_dump(include=set(self.__payload_fields__))


def _may_hold_bytes(annotation: Any, seen: frozenset[type] = frozenset()) -> bool:
    """Whether a field of this type may hold bytes, which JSON stores only when UTF-8."""
    if annotation in (bytes, bytearray):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return False
        inner = seen | {annotation}
        return any(_may_hold_bytes(f.annotation, inner) for f in annotation.model_fields.values())
    return any(_may_hold_bytes(arg, seen) for arg in get_args(annotation))


def _check_json_when_built(cls: "type[Event]") -> None:
    """Make ``cls(...)`` refuse bytes that JSON cannot hold, as a ValidationError naming the
    field, instead of failing later at append. Reads from a store skip the check."""
    build = cls.__init__

    def __init__(self: Event, /, **data: Any) -> None:
        build(self, **data)
        serializer = type(self).__pydantic_serializer__
        for name in sorted(self.__payload_fields__):
            try:
                serializer.to_json(self, include={name})
            except PydanticSerializationError as exc:
                raise ValidationError.from_exception_data(
                    type(self).__name__,
                    [
                        {
                            "type": "value_error",
                            "loc": (name,),
                            "input": getattr(self, name),
                            "ctx": {
                                "error": ValueError(
                                    f"{type(self).event_type}.{name} cannot be stored as JSON "
                                    f"({exc}); bytes must be UTF-8 text. Store binary data "
                                    "as base64 text (a str field), or elsewhere by reference"
                                )
                            },
                        }
                    ],
                ) from None

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[method-assign,assignment]


class Command(BaseModel):
    """A request to change something. Subclass it with the fields the handler needs.

    The envelope (``command_id``, ``metadata``) is set by code, never by the outside world:
    building a command with its constructor may set it, but validating untrusted input
    (``model_validate``, ``model_validate_json``, a FastAPI request body) refuses it, so a
    client can neither pick a command id nor forge a correlation id. Validate with
    ``context=TRUSTED_ENVELOPE`` to accept an envelope from a source you trust.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

    command_id: SkipJsonSchema[uuid.UUID] = Field(default_factory=new_id)
    metadata: SkipJsonSchema[JsonMetadata] = Field(default_factory=dict)

    def __init__(self, /, **data: Any) -> None:
        self.__pydantic_validator__.validate_python(
            data, self_instance=self, context=TRUSTED_ENVELOPE
        )

    # Validation must not route through __init__ (pydantic does for a custom __init__ unless it
    # is marked as behaving like the base one, as pydantic's own RootModel marks its own).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        _refuse_reserved(cls, _COMMAND_RESERVED, "command")
        super().__init_subclass__(**kwargs)

    @model_validator(mode="before")
    @classmethod
    def _no_envelope_from_outside(cls, data: Any, info: ValidationInfo) -> Any:
        if (
            isinstance(data, dict)
            and _COMMAND_RESERVED.intersection(data)
            and not (info.context and info.context.get(_TRUSTED_KEY))
        ):
            given = ", ".join(sorted(_COMMAND_RESERVED.intersection(data)))
            raise ValueError(
                f"{given} cannot be set from input: the envelope is set by the server (pass "
                "metadata to flow.dispatch(command, metadata=...)). Validate with "
                "context=eventuality.TRUSTED_ENVELOPE only for input you trust"
            )
        return data

    def __hash__(self) -> int:
        return hash(self.command_id)


E = TypeVar("E", bound=BaseModel)


def evolve(message: E, changes: dict[str, Any]) -> E:
    """A copy of ``message`` with ``changes`` applied, without validating them again.

    For the framework's own stamps (versions, positions, metadata it built): as fast as a copy
    can be, which matters on every append and load. ``model_copy`` does the same, more slowly.
    """
    copy = object.__new__(type(message))
    values = message.__dict__.copy()
    values.update(changes)
    object.__setattr__(copy, "__dict__", values)
    object.__setattr__(
        copy, "__pydantic_fields_set__", message.__pydantic_fields_set__ | changes.keys()
    )
    object.__setattr__(copy, "__pydantic_extra__", None)
    object.__setattr__(copy, "__pydantic_private__", None)
    return copy


def json_safe(event: Event) -> Event:
    """``event`` with datetimes whose UTC offset has seconds moved to UTC.

    JSON keeps offsets to the minute (``+00:19``), so a historical zone such as Amsterdam's
    +00:19:32 would come back 32 seconds off; the same instant in UTC comes back equal. Covers
    payload fields holding a datetime, or a list or tuple of them.
    """
    changes: dict[str, Any] = {}
    values = event.__dict__
    for name in event.__payload_fields__:
        value = values[name]
        kind = type(value)
        if kind is datetime or isinstance(value, datetime):
            if _odd_offset(value):
                changes[name] = value.astimezone(UTC)
        elif (kind is list or kind is tuple) and any(_odd_offset(v) for v in value):
            changes[name] = kind(v.astimezone(UTC) if _odd_offset(v) else v for v in value)
    return evolve(event, changes) if changes else event


def _odd_offset(value: object) -> bool:
    if not isinstance(value, datetime):
        return False
    offset = value.utcoffset()
    return offset is not None and bool(offset.seconds % 60 or offset.microseconds)


def event_type_names(types: Iterable[type[Event] | str]) -> frozenset[str]:
    """The stored type names matching ``types``: a class matches itself and its subclasses, a
    name matches its class; either way under the current name and every alias."""
    names: set[str] = set()
    for item in types:
        if isinstance(item, str) or (isinstance(item, type) and issubclass(item, Event)):
            names.update(names_of_type(item, Event))
        else:
            raise TypeError(f"event_types takes Event classes or type names, not {item!r}")
    return frozenset(names)


_registry[Event.event_type] = Event
