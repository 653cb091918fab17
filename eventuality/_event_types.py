"""The registry of event types: every name a class is stored under, and its upcaster chain.

A class is registered under its ``event_type`` and under each of its ``__event_aliases__`` (the
names it had before a rename or a move), so a stored row of any of those names loads as the
class. Upcasters are kept per (stored name, version); a class's chain is the union of the steps
registered under any of its names, because a rename keeps the version numbering: the row's
schema version, not its name, says which steps run.

Chains are checked while modules are imported, not at the first read: a class checks the steps
it declares (``__event_upcasters__``) and those registered before it when it is defined; a step
registered after the class (``@upcaster`` below it) is checked on its line, and a chain still
short of the class's version when its module has finished importing is reported at the next
class definition, upcaster registration or read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import EventSchemaError, UnknownEventType

if TYPE_CHECKING:
    from .messages import Event

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_registry: dict[str, type[Event]] = {}
"""Every stored name (current type names and aliases) to the class it loads as."""
_upcasters: dict[tuple[str, int], Upcaster] = {}
_names_of: dict[tuple[str, str], tuple[str, ...]] = {}
"""Names registered by each class, keyed by (module, qualified name): a class defined again
under the same key gives up its earlier names before taking its new ones."""
_unfinished: dict[tuple[str, str], tuple[type[Event], str]] = {}
"""Classes whose chain, registered after the class, is not complete yet, with the module that
registers it: checked once that module has finished importing."""


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _identity(cls: type) -> tuple[str, str]:
    return (cls.__module__, cls.__qualname__)


def _aliases(cls: type[Event]) -> tuple[str, ...]:
    """The aliases ``cls`` itself declares (a subclass does not inherit its parent's former
    names: they are the parent's), checked."""
    declared = cls.__dict__.get("__event_aliases__", ())
    if isinstance(declared, str) or not isinstance(declared, tuple | list | set | frozenset):
        raise TypeError(
            f"{_where(cls)}.__event_aliases__ is {declared!r}; it takes a tuple of the names "
            f"stored events of this class had before, e.g. __event_aliases__ = ({str(declared)!r},)"
        )
    aliases: list[str] = []
    for alias in declared:
        if not isinstance(alias, str) or not alias or "\x00" in alias:
            raise TypeError(
                f"{_where(cls)}.__event_aliases__ holds {alias!r}; each alias is a former event "
                "type name: a non-empty string without NUL"
            )
        if alias == cls.event_type:
            raise TypeError(
                f"{_where(cls)}.__event_aliases__ holds {alias!r}, the class's own event type; "
                "list only the names it had before. Remove it"
            )
        if alias in aliases:
            raise TypeError(f"{_where(cls)}.__event_aliases__ lists {alias!r} twice; list it once")
        aliases.append(alias)
    return tuple(sorted(aliases)) if isinstance(declared, set | frozenset) else tuple(aliases)


def register_class(cls: type[Event]) -> None:
    """Register ``cls`` under its type name and aliases, then check its upcaster chain.

    A class defined again under the same module and qualified name (a re-run module or a class
    built in a loop) replaces its earlier self, names included; any other clash of names would
    make stored events ambiguous and raises TypeError.
    """
    aliases = _aliases(cls)
    cls.__event_aliases__ = aliases
    identity = _identity(cls)
    for name in (cls.event_type, *aliases):
        known = _registry.get(name)
        if known is not None and _identity(known) != identity:
            raise TypeError(_clash(cls, name, known))
    again = identity in _names_of
    _check_chain_when_defined(cls, again)
    for name in _names_of.pop(identity, ()):
        if name in _registry and _identity(_registry[name]) == identity:
            del _registry[name]
    for name in (cls.event_type, *aliases):
        _registry[name] = cls
    _names_of[identity] = (cls.event_type, *aliases)
    _unfinished.pop(identity, None)
    check_finished_chains()


def _clash(cls: type[Event], name: str, known: type[Event]) -> str:
    """Why ``name`` of ``cls`` cannot be registered: ``known`` holds it."""
    theirs = "the event type" if known.event_type == name else "an alias (__event_aliases__)"
    if name == cls.event_type:
        if known.event_type == name:
            return (
                f"event type {name!r} of {_where(cls)} is already registered by "
                f"{_where(known)}; stored events could not tell them apart. Give one of them a "
                f"unique name: __event_type__ = 'context.{name}'."
            )
        return (
            f"event type {name!r} of {_where(cls)} is already {theirs} of {_where(known)}: "
            f"events stored under {name!r} load as {known.__qualname__}. Give {cls.__qualname__} "
            f"another name (__event_type__ = 'context.{name}'), or drop the alias from "
            f"{known.__qualname__}."
        )
    return (
        f"{_where(cls)}.__event_aliases__ holds {name!r}, which is already {theirs} of "
        f"{_where(known)}; events stored under {name!r} could load as only one of them. Remove "
        f"the alias, or give {known.__qualname__} another name if its events were never stored."
    )


# upcasters


def register_upcaster(event_type: str, from_version: int, upcast: Upcaster) -> None:
    """Register ``upcast`` to turn a stored payload of ``from_version`` into ``from_version + 1``.

    ``event_type`` may be the class's current name or one of its aliases: the step joins the
    class's chain either way. Payloads are migrated step by step up to the class's
    ``__event_version__`` when read. When the class is already defined, the step must lie below
    its version and follow the steps registered so far (chains are registered from the oldest
    version up), so a gap raises ValueError on the line that makes it.
    """
    if not isinstance(event_type, str) or not event_type:
        raise TypeError(f"register_upcaster takes an event type name, not {event_type!r}")
    if type(from_version) is not int or from_version < 1:
        raise ValueError(
            f"an upcaster for {event_type!r} from version {from_version!r}: versions are "
            "integers from 1 (the version a stored payload was written at)"
        )
    if not callable(upcast):
        raise TypeError(f"an upcaster must be a function of the payload dict, not {upcast!r}")
    cls = _registry.get(event_type)
    if cls is not None:
        _check_step(cls, from_version)
    _add_step(event_type, from_version, upcast, cls)
    if cls is not None:
        _note_unfinished(cls, _origin(upcast)[0])
    check_finished_chains()


def _add_step(event_type: str, version: int, upcast: Upcaster, cls: type[Event] | None) -> None:
    """Keep one step; refuse a different step for the same version under any name of ``cls``."""
    names = (event_type,) if cls is None else (cls.event_type, *cls.__event_aliases__)
    for name in names:
        known = _upcasters.get((name, version))
        if known is not None and known is not upcast and _origin(known) != _origin(upcast):
            raise ValueError(
                f"an upcaster for {name!r} from version {version} is already registered "
                f"({_origin(known)[0]}.{_origin(known)[1]}); {_origin(upcast)[0]}."
                f"{_origin(upcast)[1]} would make stored payloads read differently depending "
                "on import order. Keep one of them."
            )
    _upcasters[(event_type, version)] = upcast


def _origin(function: Callable[..., Any]) -> tuple[str, str]:
    """Where a function was defined: the same module and name again is a re-run module (a
    reload, a notebook cell, a dev server's reloader), which replaces its earlier self."""
    return (
        getattr(function, "__module__", None) or "?",
        getattr(function, "__qualname__", None) or repr(function),
    )


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator form of :func:`register_upcaster`."""

    def decorate(upcast: Upcaster) -> Upcaster:
        register_upcaster(event_type, from_version, upcast)
        return upcast

    return decorate


def _steps(cls: type[Event], *, skip_module: str | None = None) -> dict[int, Upcaster]:
    """The chain of ``cls``: its steps registered under any of its names, by version."""
    names = {cls.event_type, *cls.__event_aliases__}
    return {
        version: step
        for (name, version), step in _upcasters.items()
        if name in names and (skip_module is None or _origin(step)[0] != skip_module)
    }


def _versions(cls: type[Event]) -> tuple[int, int]:
    """The class's first and current version, checked."""
    version = cls.__event_version__
    first = cls.__event_first_version__
    if type(version) is not int or version < 1:
        raise TypeError(
            f"{_where(cls)}.__event_version__ must be an integer from 1, not {version!r}"
        )
    if type(first) is not int or not 1 <= first <= version:
        raise TypeError(
            f"{_where(cls)}.__event_first_version__ is {first!r}; it is the oldest version of "
            f"this class that was ever stored: an integer from 1 to __event_version__ ({version})"
        )
    return first, version


def _check_chain_when_defined(cls: type[Event], again: bool) -> None:
    """Check the chain ``cls`` declares plus the steps registered before it, then keep the
    declared steps.

    On a class defined again (a re-run module), steps its own module registered in the earlier
    run may be stale or may be registered again below the class, so they are left to the checks
    made as they are registered.
    """
    first, version = _versions(cls)
    declared = cls.__dict__.get("__event_upcasters__", {})
    if not isinstance(declared, Mapping):
        raise TypeError(
            f"{_where(cls)}.__event_upcasters__ is {declared!r}; it maps each stored version to "
            "the function that upcasts a payload from it: {1: v1_to_v2, 2: v2_to_v3}"
        )
    for step_version, step in declared.items():
        if type(step_version) is not int or not callable(step):
            raise TypeError(
                f"{_where(cls)}.__event_upcasters__ maps {step_version!r} to {step!r}; it maps "
                "each stored version (an int) to a function of the payload dict"
            )
    registered = _steps(cls, skip_module=cls.__module__ if again else None)
    _refuse_two_steps(cls, registered)
    steps = sorted({*registered, *declared})
    for step_version in steps:
        _refuse_out_of_range(cls, step_version, first, version, TypeError)
    missing = [v for v in range(first, version) if v not in steps]
    if steps and missing:
        raise TypeError(_gap(cls, missing, first, steps))
    for step_version, step in declared.items():
        _add_step(cls.event_type, step_version, step, cls)


def _refuse_two_steps(cls: type[Event], steps: Mapping[int, Upcaster]) -> None:
    """Refuse two different steps for one version registered under two names of ``cls`` (before
    the class joined the names): reads would depend on which name a row was stored under."""
    names = (cls.event_type, *cls.__event_aliases__)
    for version, step in steps.items():
        for name in names:
            other = _upcasters.get((name, version))
            if other is not None and other is not step and _origin(other) != _origin(step):
                raise TypeError(
                    f"{_where(cls)} has two upcasters from version {version}: "
                    f"{_origin(other)[0]}.{_origin(other)[1]} and {_origin(step)[0]}."
                    f"{_origin(step)[1]}, registered under two of its names "
                    f"({', '.join(map(repr, names))}). Keep one of them."
                )


def _refuse_out_of_range(
    cls: type[Event], step: int, first: int, version: int, error: type[Exception]
) -> None:
    if step >= version:
        raise error(
            f"an upcaster of {cls.event_type!r} ({_where(cls)}) from version {step} would never "
            f"run: the class is at version {version}, so stored payloads are at most version "
            f"{version}. Raise __event_version__ to {step + 1} if the class changed, or remove it."
        )
    if step < first:
        raise error(
            f"an upcaster of {cls.event_type!r} ({_where(cls)}) from version {step} would never "
            f"run: __event_first_version__ = {first} says no older payload was stored. Remove "
            "it, or lower __event_first_version__ if such payloads exist."
        )


def _gap(cls: type[Event], missing: list[int], first: int, steps: Iterable[int]) -> str:
    """The message for a chain of ``cls`` that lacks the steps from ``missing``."""
    low = missing[0]
    listed = ("version " if len(missing) == 1 else "versions ") + ", ".join(map(str, missing))
    oldest = first + len(missing)
    only_oldest = missing == list(range(first, oldest)) and oldest in set(steps)
    hint = (
        f" If no payload older than version {oldest} was ever stored, say so instead: "
        f"__event_first_version__ = {oldest}."
        if only_oldest
        else ""
    )
    return (
        f"the upcaster chain of {cls.event_type!r} ({_where(cls)}, at version "
        f"{cls.__event_version__}) has no step from {listed}: stored payloads of that "
        f"version could not be read. Write it: @upcaster({cls.event_type!r}, from_version={low}) "
        f"on a function turning a version {low} payload into version {low + 1}, or add "
        f"{low}: that_function to {cls.__qualname__}.__event_upcasters__.{hint}"
    )


def _check_step(cls: type[Event], step: int) -> None:
    """Check a step about to be registered after its class: in range, and next to the steps
    below it (a chain is registered from its oldest step up, so a gap shows on its line)."""
    first, version = _versions(cls)
    _refuse_out_of_range(cls, step, first, version, ValueError)
    steps = {*_steps(cls), step}
    below = [v for v in range(first, step) if v not in steps]
    if below:
        raise ValueError(f"{_gap(cls, below, first, steps)} Register a chain from its oldest up.")


def _note_unfinished(cls: type[Event], module: str) -> None:
    """Remember a chain still short of the class's version while ``module`` (which registers
    it) is being imported, to check once it has finished. A chain registered by code running
    later (a function, a test) has no such end: its steps get only the checks on their lines."""
    first, version = _versions(cls)
    steps = _steps(cls)
    if any(v not in steps for v in range(first, version)) and _importing(module):
        _unfinished[_identity(cls)] = (cls, module)
    else:
        _unfinished.pop(_identity(cls), None)


def _importing(module: str) -> bool:
    """Whether ``module`` is still being imported (or runs as a script, which has no end we
    could see before it reads)."""
    found = sys.modules.get(module)
    if found is None:
        return False
    spec = getattr(found, "__spec__", None)
    return spec is None or bool(getattr(spec, "_initializing", False))


def check_finished_chains() -> None:
    """Raise for a chain registered after its class that is still incomplete now that the module
    registering it has finished importing.

    :raises TypeError: naming the class and the missing step.
    """
    for identity, (cls, module) in list(_unfinished.items()):
        if _importing(module):
            continue
        del _unfinished[identity]
        if module not in sys.modules or _registry.get(cls.event_type) is not cls:
            continue  # its import failed (it raised already), or the class was replaced
        first, version = _versions(cls)
        steps = _steps(cls)
        missing = [v for v in range(first, version) if v not in steps]
        if missing:
            raise TypeError(
                f"{_gap(cls, missing, first, steps)} (Its steps are registered in {module}.)"
            )


def upcast_payload(
    cls: type[Event], stored_version: int, payload: dict[str, Any]
) -> dict[str, Any]:
    """Migrate ``payload`` from ``stored_version`` to the class's current version."""
    version = stored_version
    names = (cls.event_type, *cls.__event_aliases__)
    while version < cls.__event_version__:
        step = None
        for name in names:
            step = _upcasters.get((name, version))
            if step is not None:
                break
        if step is None:
            raise EventSchemaError(
                cls.event_type,
                f"it was stored at version {stored_version}, the class is at version "
                f"{cls.__event_version__}, and no upcaster is registered from version {version}",
            )
        payload = step(payload)
        version += 1
    return payload


# lookups


def event_class(event_type: str) -> type[Event]:
    """The Event class registered under ``event_type`` (its current name or an alias).

    :raises UnknownEventType: no class in this process carries that name.
    """
    try:
        return _registry[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def names_of_type(item: type[Event] | str, base: type[Event]) -> Iterable[str]:
    """The stored names ``item`` matches: a class, itself and its subclasses under every name;
    a name, the class holding it under every name (a former name still means that type)."""
    if isinstance(item, str):
        cls = _registry.get(item)
        if cls is None or cls is base:
            return (item,)
        return (item, cls.event_type, *cls.__event_aliases__)
    names = [n for n, c in _registry.items() if issubclass(c, item)]
    if item is not base:
        names.append(item.event_type)
    return names
