"""open_store(url): which store a URL names, and how a URL it cannot use is refused."""

from pathlib import Path

import pytest

from eventuality import InMemoryEventStore, InvalidStoreURL, SQLiteEventStore, open_store
from tests.domain import TodoCreated

ACCEPTED = ("memory://", "sqlite:///", "postgresql://")
SECRET = "s3cr3t-Pa55"


def _refusal(url: str) -> InvalidStoreURL:
    with pytest.raises(InvalidStoreURL) as raised:
        open_store(url)
    return raised.value


async def test_memory_url_opens_an_in_memory_store() -> None:
    url = "memory://"

    store = open_store(url)

    assert isinstance(store, InMemoryEventStore)
    async with store:
        assert await store.append("a", [TodoCreated(description="a")])


async def test_sqlite_url_with_three_slashes_opens_a_file_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    store = open_store("sqlite:///relative.db")
    async with store:
        await store.append("a", [TodoCreated(description="a")])

    assert isinstance(store, SQLiteEventStore)
    assert store.path == "relative.db"
    assert (tmp_path / "relative.db").is_file()


async def test_sqlite_url_with_four_slashes_opens_an_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "absolute.db"

    store = open_store(f"sqlite:///{path}")
    async with store:
        await store.append("a", [TodoCreated(description="a")])

    assert isinstance(store, SQLiteEventStore)
    assert store.path == str(path)
    assert path.is_file()


def test_sqlite_url_without_options_uses_synchronous_normal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"

    store = open_store(url)

    assert isinstance(store, SQLiteEventStore)
    assert store.synchronous == "NORMAL"


@pytest.mark.parametrize("value", ["FULL", "full"])
def test_sqlite_url_query_sets_synchronous(tmp_path: Path, value: str) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}?synchronous={value}"

    store = open_store(url)

    assert isinstance(store, SQLiteEventStore)
    assert (store.path, store.synchronous) == (str(tmp_path / "events.db"), "FULL")


def test_sqlite_memory_url_opens_a_private_in_memory_database() -> None:
    url = "sqlite:///:memory:"

    store = open_store(url)

    assert isinstance(store, SQLiteEventStore)
    assert store.path == ":memory:"


def test_postgresql_url_makes_a_postgres_store_without_connecting() -> None:
    pytest.importorskip("asyncpg")
    from eventuality.stores.postgres import PostgresEventStore

    store = open_store("postgresql://user@localhost:1/db")

    assert isinstance(store, PostgresEventStore)


@pytest.mark.parametrize("url", ["mysql://user@host/db", "redis://host", "ftp://x/y.db"])
def test_unknown_scheme_raises_invalid_store_url_naming_the_url_and_accepted_schemes(
    url: str,
) -> None:
    given = url

    error = _refusal(given)

    assert isinstance(error, ValueError)
    assert url in str(error)
    assert all(scheme in str(error) for scheme in ACCEPTED)


MALFORMED = [
    "",
    "memory",
    "relative.db",
    "://x",
    "memory://somewhere",
    "sqlite://relative.db",
    "sqlite:///",
    "sqlite:///x.db?synchronous=SOMETIMES",
    "sqlite:///x.db?busy_timeout=soon",
    "sqlite:///x.db?no_such_option=1",
    "sqlite://[::1/x.db",
    "mysql://[::1/db",
]


@pytest.mark.parametrize("url", MALFORMED)
def test_malformed_url_raises_invalid_store_url_naming_the_url_and_accepted_schemes(
    url: str,
) -> None:
    given = url

    error = _refusal(given)

    assert isinstance(error, ValueError)
    assert repr(url) in str(error)
    assert all(scheme in str(error) for scheme in ACCEPTED)


WITH_PASSWORD = [
    f"mysql://user:{SECRET}@host/db",
    f"mysql://:{SECRET}@host/db",
    f"sqlite://user:{SECRET}@host/x.db",
    f"postgresql://user:{SECRET}@host/db?min_size=many",
    f"postgresql://host/db?password={SECRET}&min_size=many",
    f"redis://host/0?password={SECRET}",
    f"mysql://user:{SECRET}/x@host/db",
    f"mysql://user:{SECRET}?x@host/db",
    f"mysql://user:{SECRET}#x@host/db",
    f"mysql://user:{SECRET}@[::1/db",
]


@pytest.mark.parametrize("url", WITH_PASSWORD)
def test_refused_url_never_shows_its_password(url: str) -> None:
    given = url

    error = _refusal(given)

    assert SECRET not in str(error)
    assert SECRET not in repr(error)


@pytest.mark.parametrize(
    "url",
    [f"postgresql://user:{SECRET}@localhost:1/db", f"postgresql://user:{SECRET}/x@localhost:1/db"],
)
def test_postgresql_store_repr_never_shows_the_password(url: str) -> None:
    pytest.importorskip("asyncpg")

    store = open_store(url)

    assert SECRET not in repr(store)
