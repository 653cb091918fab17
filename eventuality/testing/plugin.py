"""The ``pytest11`` entry point: pytest loads it in every run, so by itself it does nothing.

It declares the ini options, and adds eventuality's fixtures (:mod:`eventuality.testing.fixtures`)
only when the ini says ``eventuality_fixtures = true``. A conftest may instead say
``pytest_plugins = ["eventuality.testing.fixtures"]``. (This module cannot be named there:
pytest registers it already, under the name ``eventuality``, and refuses a second registration.)
"""

from __future__ import annotations

import pytest

FIXTURES = "eventuality.testing.fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "eventuality_fixtures",
        "add eventuality's pytest fixtures (event_store) to this test suite",
        type="bool",
        default=False,
    )
    parser.addini(
        "eventuality_postgres_dsn",
        "a PostgreSQL server for event_store (each test gets a schema, dropped afterwards); "
        "the EVENTUALITY_TEST_POSTGRES_DSN environment variable overrides it",
        default="",
    )
    parser.addini(
        "eventuality_stores",
        "the stores event_store runs each test on (memory sqlite postgres); default: memory "
        "and sqlite, plus postgres when a DSN is configured",
        type="args",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getini("eventuality_fixtures"):
        config.pluginmanager.import_plugin(FIXTURES)
