"""The store contract, part two: where stores used to differ (limits, cancellation, SQL on the
store's own database), they behave alike. Run on every store kind the project has.

The tests live in :mod:`eventuality.testing.contract` (``alike`` and ``transactions``).
"""

from eventuality.testing.contract import contract_store, sql_store  # noqa: F401
from eventuality.testing.contract.alike import *  # noqa: F403
from eventuality.testing.contract.transactions import *  # noqa: F403
