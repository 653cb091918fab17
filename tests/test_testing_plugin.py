"""The pytest plugin: inert when installed, an ``event_store`` per store kind when enabled."""

from pathlib import Path

import pytest

from tests.conftest import POSTGRES_DSN, requires_postgres

pytest_plugins = ["pytester"]

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
ENABLED_INI = INI + "eventuality_fixtures = true\n"
ASYNCIO_ONLY = """
import pytest

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""
ENABLING_CONFTEST = 'pytest_plugins = ["eventuality.testing.fixtures"]\n' + ASYNCIO_ONLY

KIND_TEST = """
import pytest

TYPES = {"memory": "InMemoryEventStore", "sqlite": "SQLiteEventStore",
         "postgres": "PostgresEventStore"}

@pytest.mark.anyio
async def test_store(event_store, event_store_kind):
    assert type(event_store).__name__ == TYPES[event_store_kind]
    assert await event_store.last_position() == 0
"""


@pytest.fixture(autouse=True)
def _no_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user tests below run without PostgreSQL unless a test sets the variable."""
    monkeypatch.delenv("EVENTUALITY_TEST_POSTGRES_DSN", raising=False)


def test_the_installed_plugin_adds_no_fixture_to_this_suite(pytestconfig: pytest.Config) -> None:
    manager = pytestconfig.pluginmanager

    assert manager.has_plugin("eventuality")
    assert not manager.has_plugin("eventuality.testing.fixtures")


def test_without_enabling_it_event_store_does_not_exist(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(ASYNCIO_ONLY)
    pytester.makepyfile(KIND_TEST)

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'event_store' not found*"])


def test_a_conftest_enables_one_run_per_store(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(ENABLING_CONFTEST)
    pytester.makepyfile(KIND_TEST)

    result = pytester.runpytest("-v", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_store?memory? PASSED*", "*test_store?sqlite? PASSED*"])


def test_the_ini_option_enables_one_run_per_store(pytester: pytest.Pytester) -> None:
    pytester.makeini(ENABLED_INI)
    pytester.makeconftest(ASYNCIO_ONLY)
    pytester.makepyfile(KIND_TEST)

    result = pytester.runpytest("-v", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=2)


def test_each_test_gets_an_empty_store_closed_after_it(pytester: pytest.Pytester) -> None:
    pytester.makeini(ENABLED_INI)
    pytester.makeconftest(ASYNCIO_ONLY)
    pytester.makepyfile(
        """
        import pytest
        from eventuality import Event, StoreClosedError

        class PluginNoted(Event):
            text: str

        EARLIER = []

        @pytest.mark.anyio
        @pytest.mark.parametrize("round", [1, 2])
        async def test_store(event_store, round):
            assert await event_store.last_position() == 0
            await event_store.append("notes-1", [PluginNoted(text="a")])
            for earlier in EARLIER:
                with pytest.raises(StoreClosedError):
                    await earlier.last_position()
            EARLIER.append(event_store)
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=4)


def test_on_trio_the_asyncio_only_stores_are_skipped_saying_why(pytester: pytest.Pytester) -> None:
    pytester.makeini(ENABLED_INI)
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(params=["asyncio", "trio"])
        def anyio_backend(request):
            return request.param
        """
    )
    pytester.makepyfile(KIND_TEST)

    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(["*the sqlite store needs asyncio (its driver does), not trio*"])


def test_a_test_may_choose_its_own_store_kinds(pytester: pytest.Pytester) -> None:
    pytester.makeini(ENABLED_INI)
    pytester.makeconftest(ASYNCIO_ONLY)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.anyio
        @pytest.mark.parametrize("event_store_kind", ["memory"], indirect=True)
        async def test_store(event_store, event_store_kind):
            assert event_store_kind == "memory"
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


def test_the_ini_chooses_the_store_kinds(pytester: pytest.Pytester) -> None:
    pytester.makeini(ENABLED_INI + "eventuality_stores = sqlite\n")
    pytester.makeconftest(ASYNCIO_ONLY)
    pytester.makepyfile(KIND_TEST)

    result = pytester.runpytest("-v", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_store?sqlite? PASSED*"])


POSTGRES_TEST = """
import os

import anyio
import asyncpg
import pytest

SCHEMAS = []

@pytest.mark.anyio
@pytest.mark.parametrize("event_store_kind", ["postgres"], indirect=True)
async def test_schema(event_store, event_store_kind):
    SCHEMAS.append(event_store.backend.schema)

def test_the_schema_was_dropped_after_the_test():
    async def exists():
        connection = await asyncpg.connect(os.environ["EVENTUALITY_TEST_POSTGRES_DSN"])
        try:
            return await connection.fetchval(
                "SELECT count(*) FROM pg_namespace WHERE nspname = $1", SCHEMAS[0]
            )
        finally:
            await connection.close()

    assert SCHEMAS[0].startswith("eventuality_test_")
    assert anyio.run(exists) == 0
"""


@requires_postgres
def test_a_configured_server_adds_a_postgres_run_in_a_schema_dropped_after(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTUALITY_TEST_POSTGRES_DSN", POSTGRES_DSN)
    pytester.makeini(ENABLED_INI)
    pytester.makeconftest(ASYNCIO_ONLY)
    pytester.makepyfile(test_kinds=KIND_TEST, test_schema=POSTGRES_TEST)

    # in a process of its own: asyncpg's extension modules cannot be imported twice in one
    result = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*test_store?postgres? PASSED*"])


def test_the_plugin_module_documents_how_to_enable_it() -> None:
    import eventuality.testing.plugin as plugin

    assert plugin.__doc__ is not None
    assert "eventuality.testing.fixtures" in plugin.__doc__
    assert Path(plugin.__file__).name == "plugin.py"
