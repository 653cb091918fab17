"""The store contract, shipped: every test a store must pass, for your own backend too.

In a test module of your project::

    import pytest
    from eventuality.testing.contract import *  # noqa: F403

    @pytest.fixture
    def contract_store_factory(tmp_path):
        return lambda: MyEventStore(tmp_path / "data")

The factory makes a new, unopened store each call; for a store whose ``capabilities.durable``
is true, every call in one test makes a store on the same data. The tests are plain ``async
def``: run them under pytest-asyncio's auto mode, or add ``pytestmark = pytest.mark.anyio``.

Tests of a capability the store does not declare (``store.capabilities``: checkpoints,
snapshots, transactions, cross-process locks, gap-free positions, durable data) are skipped,
each saying why. One tier alone: ``from eventuality.testing.contract.log_append import *``.

Modules: ``log_append``, ``log_duplicates``, ``log_read``, ``log_verbatim``, ``log_live``,
``lifecycle``, ``alike`` (the event log, which every store implements); ``checkpoints``,
``snapshots``, ``transactions``, ``locks``, ``streams``, ``streams_atomic``, ``personal``,
``commands``, ``reactions_atomic``, ``reactions`` and ``reactions_personal`` (the optional
tiers; ``streams`` and ``streams_atomic``: deleting, truncating, archiving and restoring
streams; ``personal``: personal data and ``forget``; ``commands``: commands recorded under
idempotency keys; ``reactions_atomic``: appends that move a checkpoint; ``reactions``:
:class:`~eventuality.Reaction` on the store; ``reactions_personal``: reactions that commit
personal data, which needs the personal-data tier too).
"""

from . import (
    alike,
    checkpoints,
    commands,
    lifecycle,
    locks,
    log_append,
    log_duplicates,
    log_live,
    log_read,
    log_verbatim,
    personal,
    reactions,
    reactions_atomic,
    reactions_personal,
    snapshots,
    streams,
    streams_atomic,
    transactions,
)
from ._support import StoreFactory as StoreFactory
from ._support import checkpoint_store as checkpoint_store
from ._support import command_store as command_store
from ._support import contract_store as contract_store
from ._support import lifecycle_store as lifecycle_store
from ._support import personal_store as personal_store
from ._support import reaction_store as reaction_store
from ._support import requires as requires
from ._support import snapshot_store as snapshot_store
from ._support import sql_store as sql_store
from .alike import *  # noqa: F403
from .checkpoints import *  # noqa: F403
from .commands import *  # noqa: F403
from .lifecycle import *  # noqa: F403
from .locks import *  # noqa: F403
from .log_append import *  # noqa: F403
from .log_duplicates import *  # noqa: F403
from .log_live import *  # noqa: F403
from .log_read import *  # noqa: F403
from .log_verbatim import *  # noqa: F403
from .personal import *  # noqa: F403
from .reactions import *  # noqa: F403
from .reactions_atomic import *  # noqa: F403
from .reactions_personal import *  # noqa: F403
from .snapshots import *  # noqa: F403
from .streams import *  # noqa: F403
from .streams_atomic import *  # noqa: F403
from .transactions import *  # noqa: F403

FIXTURES = [
    "checkpoint_store",
    "command_store",
    "contract_store",
    "lifecycle_store",
    "personal_store",
    "reaction_store",
    "snapshot_store",
    "sql_store",
]
"""The fixtures the tests take; the user supplies ``contract_store_factory``."""

MODULES = (
    alike,
    checkpoints,
    commands,
    lifecycle,
    locks,
    log_append,
    log_duplicates,
    log_live,
    log_read,
    log_verbatim,
    personal,
    reactions,
    reactions_atomic,
    reactions_personal,
    snapshots,
    streams,
    streams_atomic,
    transactions,
)
"""The suite's modules, one a tier or theme: star-import one to run only that part."""

TESTS = sorted(name for module in MODULES for name in module.__all__)
"""Every test the suite defines."""

__all__ = ["StoreFactory", "requires", *FIXTURES, *TESTS]
