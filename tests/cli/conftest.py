"""Store URLs for the command's tests: a SQLite file, and a PostgreSQL schema of the test's own
(skipped without a server), each empty until a test fills it."""

from pathlib import Path

import pytest

from tests.conftest import POSTGRES_DSN, postgres_schema, requires_postgres


def sqlite_url(tmp_path: Path, name: str = "events") -> str:
    return f"sqlite:///{tmp_path / name}.db"


def postgres_url(tmp_path: Path, name: str = "events") -> str:
    schema = postgres_schema(tmp_path) + ("" if name == "events" else f"_{name}")
    return f"{POSTGRES_DSN}{'&' if '?' in POSTGRES_DSN else '?'}schema={schema}"


def url_of(kind: str, tmp_path: Path, name: str = "events") -> str:
    return sqlite_url(tmp_path, name) if kind == "sqlite" else postgres_url(tmp_path, name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=requires_postgres)])
def kind(request: pytest.FixtureRequest) -> str:
    found: str = request.param
    return found
