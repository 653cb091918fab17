"""The store contract, run on every store kind the project has (the ``store_kind`` fixture).

The tests live in :mod:`eventuality.testing.contract`, shipped for third-party backends; the
``contract_store_factory`` fixture in ``tests/conftest.py`` makes the stores. This module runs
the event log and its optional tiers; ``test_contract_alike.py`` runs the rest.
"""

from eventuality.testing.contract import (  # noqa: F401
    checkpoint_store,
    command_store,
    contract_store,
    lifecycle_store,
    reaction_store,
    snapshot_store,
)
from eventuality.testing.contract.checkpoints import *  # noqa: F403
from eventuality.testing.contract.commands import *  # noqa: F403
from eventuality.testing.contract.lifecycle import *  # noqa: F403
from eventuality.testing.contract.locks import *  # noqa: F403
from eventuality.testing.contract.log_append import *  # noqa: F403
from eventuality.testing.contract.log_duplicates import *  # noqa: F403
from eventuality.testing.contract.log_live import *  # noqa: F403
from eventuality.testing.contract.log_read import *  # noqa: F403
from eventuality.testing.contract.log_verbatim import *  # noqa: F403
from eventuality.testing.contract.reactions import *  # noqa: F403
from eventuality.testing.contract.reactions_atomic import *  # noqa: F403
from eventuality.testing.contract.reactions_personal import *  # noqa: F403
from eventuality.testing.contract.snapshots import *  # noqa: F403
from eventuality.testing.contract.streams import *  # noqa: F403
from eventuality.testing.contract.streams_atomic import *  # noqa: F403
