"""The reading commands through click's runner, on a SQLite file and a PostgreSQL schema."""

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from eventuality import open_store
from eventuality.cli._app import cli
from tests.cli._populate import populate
from tests.cli.conftest import url_of


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


async def _fill(url: str) -> None:
    async with open_store(url) as store:
        await populate(store)


@pytest.fixture
def url(kind: str, tmp_path: Path) -> str:
    """A store holding one of everything (tests/cli/_populate.py); the command's tests are
    plain functions, since the command runs its own event loop."""
    found = url_of(kind, tmp_path)
    anyio.run(_fill, found)
    return found


def test_info_describes_the_store(url: str, kind: str) -> None:
    result = invoke("info", url, "--json")

    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["kind"] == ("sqlite" if kind == "sqlite" else "postgresql")
    assert (found["schema_version"], found["events"], found["streams"]) == (2, 13, 9)
    assert found["last_position"] > 0
    assert found["size_bytes"] > 0


def test_info_as_a_table_names_each_fact(url: str) -> None:
    result = invoke("info", url)

    assert result.exit_code == 0
    for word in ("kind", "schema_version", "events", "streams", "last_position", "size_bytes"):
        assert word in result.output


def test_streams_lists_versions_counts_and_states(url: str) -> None:
    result = invoke("streams", url, "--prefix", "Todo-", "--json")

    found = {
        s["stream_id"]: (s["version"], s["events"], s["state"]) for s in json.loads(result.output)
    }
    assert found == {
        "Todo-t1": (3, 2, "live"),
        "Todo-t2": (3, 3, "live"),
        "Todo-t3": (3, 3, "live"),
        "Todo-t4": (3, 0, "deleted"),
        "Todo-t5": (3, 3, "archived"),
        "Todo-t6": (1, 1, "live"),
    }


def test_show_gives_a_streams_events_as_json(url: str) -> None:
    result = invoke("show", url, "Todo-t2", "--from-version", "2", "--json")

    assert result.exit_code == 0
    found = json.loads(result.output)
    assert [(e["version"], e["event_type"]) for e in found] == [
        (2, "TodoRenamed"),
        (3, "TodoCompleted"),
    ]
    assert found[0]["payload"] == {"description": "renamed 2"}


def test_show_keeps_personal_data_sealed(url: str) -> None:
    result = invoke("show", url, "Member-ada", "--json")

    (event,) = json.loads(result.output)
    assert event["payload"]["name"].startswith("eventuality-pd:v1:")
    assert "Ada" not in result.output


def test_show_a_missing_stream_fails_clearly(url: str) -> None:
    result = invoke("show", url, "Todo-nope")

    assert result.exit_code == 1
    assert "stream 'Todo-nope' has no events" in result.output


def test_show_a_deleted_stream_says_so(url: str) -> None:
    result = invoke("show", url, "Todo-t4")

    assert result.exit_code == 1
    assert "deleted" in result.output


def test_tail_shows_the_last_events_as_json_lines(url: str) -> None:
    result = invoke("tail", url, "-n", "2", "--json")

    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [e["event_type"] for e in lines] == ["eventuality.StreamArchival", "TodoCreated"]


def test_tail_filters_by_type(url: str) -> None:
    result = invoke("tail", url, "-n", "100", "--type", "TodoCompleted", "--json")

    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [e["stream_id"] for e in lines] == ["Todo-t1", "Todo-t2", "Todo-t3"]


def test_tail_from_a_position_shows_everything_after_it(url: str) -> None:
    everything = invoke("tail", url, "--from-position", "0", "--json").output.splitlines()
    third = json.loads(everything[2])["position"]

    result = invoke("tail", url, "--from-position", str(third), "--json")

    assert result.output.splitlines() == everything[3:]
    assert len(everything) == 13


def test_subscriptions_shows_each_checkpoint_with_its_lag(url: str) -> None:
    result = invoke("subscriptions", url, "--json")

    (found,) = json.loads(result.output)
    assert (found["name"], found["lag"]) == ("todo-list", 3)


def test_a_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    result = invoke("info", f"sqlite:///{tmp_path}/nope.db")

    assert result.exit_code == 1
    assert "there is no SQLite file" in result.output
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("foo://x", "the scheme 'foo' is not one eventuality knows"),
        ("events.db", "it has no scheme"),
        ("memory://", "lives inside one process"),
        ("sqlite:///:memory:", "lives inside one process"),
    ],
)
def test_a_bad_url_is_an_error(url: str, says: str) -> None:
    result = invoke("streams", url)

    assert result.exit_code == 1
    assert says in result.output


def test_a_password_is_never_printed() -> None:
    result = invoke("info", "postgresql://someone:hunter2@127.0.0.1:1/db")

    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert "someone:***@" in result.output


def test_without_the_cli_extra_the_script_says_what_to_install() -> None:
    code = "import sys; sys.modules['click'] = None; from eventuality.cli import main; main()"

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert done.returncode == 2
    assert 'pip install "eventuality[cli]"' in done.stderr
