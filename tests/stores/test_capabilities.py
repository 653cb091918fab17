"""What each of the project's stores declares: the shipped contract suite skips what a store
does not declare, so a declaration that drifts would quietly skip tests. These pin them."""

from dataclasses import replace
from pathlib import Path

import pytest

from eventuality.stores.boundary import Capabilities, capabilities_of
from tests.conftest import STORE_KINDS, make_store

_FULL = Capabilities(
    checkpoints=True,
    snapshots=True,
    transactions=True,
    live_wait=True,
    cross_process_locks=False,
    gap_free_positions=True,
    durable=False,
    stream_lifecycle=True,
    personal_data=True,
    commands=True,
    reactions=True,
)
EXPECTED = {
    "memory": _FULL,
    "sqlite-file": replace(_FULL, cross_process_locks=True, durable=True),
    "sqlite-memory": _FULL,
    "postgres": replace(_FULL, cross_process_locks=True, gap_free_positions=False, durable=True),
}


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_each_project_store_declares_what_it_offers(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path)

    assert store.capabilities == EXPECTED[kind]


class _Delegating:
    """A wrapper (tracing, fault injection) that forwards every attribute to a backend."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_a_delegating_wrapper_offers_what_it_wraps(tmp_path: Path) -> None:
    store = make_store("sqlite-file", tmp_path)

    wrapped = capabilities_of(_Delegating(store._backend))  # type: ignore[arg-type]

    assert wrapped == EXPECTED["sqlite-file"]


def test_half_a_tier_is_refused_naming_what_is_missing() -> None:
    from tests.stores.log_only import LogOnlyBackend

    class HalfCheckpoints(LogOnlyBackend):
        async def get_checkpoint(self, name: str) -> int | None:
            return None

    with pytest.raises(TypeError, match="set_checkpoint"):
        capabilities_of(HalfCheckpoints())
