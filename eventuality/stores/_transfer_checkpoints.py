"""What a copy or an import does with the source's checkpoints: the caller decides, per name.

A copy carries the event log and eventuality's own tables, never a projection's read-model
tables (they are the application's, in whatever shape it gave them). So a checkpoint cannot be
carried blindly: a projection resuming from its copied checkpoint would answer from an empty
table, and a subscription with effects elsewhere (sending emails) restarted from 0 would do them
all again. The store cannot tell the two apart, so every subscription with a checkpoint must be
named: ``rebuild`` (its checkpoints stay behind; it starts from the first event on the target
and fills its tables there) or ``keep`` (carried at the same event, to go on where it was).

A name covers all its checkpoints: ``name``, its versions (``name@v2``) and its partitions
(``name#0/4``, ``name#partitions``, also of versions: ``name@v2#0/4``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import StoreUsageError

__all__ = ["CheckpointPlan", "subscription_of"]

_SUFFIX = re.compile(r"(?:#(?:\d+/\d+|partitions))?$")
_VERSION = re.compile(r"@v\d+$")


def subscription_of(checkpoint: str) -> str:
    """The subscription (or projection) a checkpoint belongs to: ``todo-list@v2#1/4`` ->
    ``todo-list``."""
    return _VERSION.sub("", _SUFFIX.sub("", checkpoint, count=1), count=1)


@dataclass(frozen=True, slots=True)
class CheckpointPlan:
    """Subscription names to rebuild on the target, and names whose checkpoints to keep."""

    rebuild: frozenset[str] = frozenset()
    keep: frozenset[str] = frozenset()

    @classmethod
    def of(cls, rebuild: Iterable[str] = (), keep: Iterable[str] = ()) -> CheckpointPlan:
        """The plan for these names.

        :raises StoreUsageError: a name is both rebuilt and kept, or is a checkpoint's full
            name (``name#0/4``, ``name@v2``) rather than its subscription's.
        """
        for argument in (rebuild, keep):
            if isinstance(argument, str):
                raise TypeError(f"rebuild and keep are lists of names, not the str {argument!r}")
        plan = cls(frozenset(rebuild), frozenset(keep))
        both = sorted(plan.rebuild & plan.keep)
        if both:
            raise StoreUsageError(f"{_names(both)} cannot be both rebuilt and kept")
        full = sorted(n for n in plan.rebuild | plan.keep if subscription_of(n) != n)
        if full:
            wanted = ", ".join(repr(subscription_of(n)) for n in full)
            raise StoreUsageError(
                f"{_names(full)}: name the subscription ({wanted}), which covers all its "
                "checkpoints (versions and partitions)"
            )
        return plan

    def rebuilds(self, checkpoint: str) -> bool:
        """Whether ``checkpoint`` stays behind."""
        return subscription_of(checkpoint) in self.rebuild

    def check(self, checkpoints: Iterable[str], projections: Sequence[str] = ()) -> None:
        """Refuse unless every subscription with a checkpoint in ``checkpoints`` is named, and
        every name has a checkpoint. ``projections``: names known to be projections (they
        have versions), pointed out in the message.

        :raises StoreUsageError: naming what is missing or unknown; nothing was written.
        """
        found = {subscription_of(name) for name in checkpoints}
        missing = sorted(found - self.rebuild - self.keep)
        unknown = sorted((self.rebuild | self.keep) - found)
        if unknown:
            held = f" (it has: {_names(sorted(found))})" if found else " (it has none)"
            raise StoreUsageError(
                f"the source has no checkpoint of {_names(unknown)}{held}. Nothing was written."
            )
        if not missing:
            return
        shown = ", ".join(
            f"{name!r} (a versioned projection)" if name in projections else repr(name)
            for name in missing
        )
        raise StoreUsageError(
            f"the source has checkpoints of {shown}: say what to do with each. A copy carries "
            "the events, not read models (a projection's tables are the application's and "
            "stay behind). Rebuild a projection (--rebuild NAME, rebuild=[...]): its "
            "checkpoints stay behind and it starts again from the first event on the target, "
            "filling its tables there. Keep a subscription whose effects are elsewhere, such "
            "as sending emails (--keep NAME, keep=[...]): it goes on at the same event. "
            "Nothing was written."
        )


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names)
