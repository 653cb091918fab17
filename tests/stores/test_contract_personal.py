"""The store contract, personal data: sealed on append, masked for good after ``forget``.

The tests live in :mod:`eventuality.testing.contract.personal`.
"""

from eventuality.testing.contract import contract_store, personal_store  # noqa: F401
from eventuality.testing.contract.personal import *  # noqa: F403
