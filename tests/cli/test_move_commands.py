"""copy, export and import through click's runner: faithful, resumable, verified, and
writing nothing on bad input."""

import json
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from eventuality import open_store
from eventuality.cli._app import cli
from tests.cli._populate import TodoCreatedElsewhere, assert_same, populate
from tests.cli.conftest import sqlite_url, url_of

KEEP = ("--keep", "todo-list")  # populate's one subscription: carried at the same event


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


async def _fill(url: str) -> None:
    async with open_store(url) as store:
        await populate(store)


async def _same(source: str, target: str) -> None:
    async with open_store(source) as a, open_store(target) as b:
        await assert_same(a, b)


async def _count(url: str) -> int:
    async with open_store(url) as store:
        return len([r async for r in store.read_all_records()])


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = sqlite_url(tmp_path, "source")
    anyio.run(_fill, url)
    return url


def test_copy_carries_everything_and_verifies(source: str, kind: str, tmp_path: Path) -> None:
    target = url_of(kind, tmp_path, "target")

    result = invoke("copy", source, target, *KEEP)

    assert result.exit_code == 0, result.output
    assert "copied 16 events" in result.output
    assert "verify: OK" in result.output
    anyio.run(_same, source, target)


def test_a_second_copy_adds_nothing(source: str, tmp_path: Path) -> None:
    target = sqlite_url(tmp_path, "target")
    invoke("copy", source, target, *KEEP)

    again = invoke("copy", source, target, *KEEP)

    assert again.exit_code == 0
    assert "copied 0 events (resumed: 16 were there)" in again.output
    assert anyio.run(_count, target) == 13


def test_copy_refuses_a_target_holding_other_events(source: str, tmp_path: Path) -> None:
    target = sqlite_url(tmp_path, "target")

    async def other() -> None:
        async with open_store(target) as store:
            await store.append("Other-1", [TodoCreatedElsewhere(description="mine")])

    anyio.run(other)

    result = invoke("copy", source, target, *KEEP)

    assert result.exit_code == 1
    assert "not an interrupted copy of this source" in result.output
    assert anyio.run(_count, target) == 1


def test_copy_to_itself_is_refused(source: str) -> None:
    result = invoke("copy", source, source)

    assert result.exit_code == 1
    assert "the same store" in result.output


def test_copy_stays_quiet_when_piped(source: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["copy", source, sqlite_url(tmp_path, "target"), *KEEP])

    assert result.stderr == ""
    assert "━" not in result.output


def test_export_then_import_gives_an_equal_store(source: str, kind: str, tmp_path: Path) -> None:
    file = tmp_path / "store.jsonl"
    target = url_of(kind, tmp_path, "imported")

    exported = invoke("export", source, str(file))
    imported = invoke("import", target, str(file), *KEEP)

    assert exported.exit_code == 0
    assert imported.exit_code == 0, imported.output
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    assert lines[0]["format"] == "eventuality-export"
    assert lines[-1] == {"kind": "end", "events": 16}
    anyio.run(_same, source, target)


def test_export_to_stdout_and_import_from_stdin(source: str, tmp_path: Path) -> None:
    target = sqlite_url(tmp_path, "piped")

    exported = CliRunner().invoke(cli, ["export", source, "-"])
    imported = invoke("import", target, "-", *KEEP, input=exported.stdout)

    assert imported.exit_code == 0, imported.output
    anyio.run(_same, source, target)


def test_export_without_keys_imports_personal_data_as_masks(source: str, tmp_path: Path) -> None:
    file, target = tmp_path / "nokeys.jsonl", sqlite_url(tmp_path, "nokeys")
    invoke("export", source, str(file), "--no-keys")

    invoke("import", target, str(file), *KEEP)

    async def read() -> str:
        async with open_store(target) as store:
            (ada,) = await store.read_stream("Member-ada")
            return str(getattr(ada, "name", ""))

    assert "subject_key" not in file.read_text()
    assert anyio.run(read) == "[erased]"


@pytest.mark.parametrize(
    ("cut", "says"),
    [
        (lambda lines: lines[:-1], "cut off"),
        (lambda lines: ["{not json", *lines[1:]], "line 1 of the export: not JSON"),
        (lambda lines: lines[1:], "not an eventuality export"),
        (lambda lines: [*lines[:3], '{"kind": "event", "event_id": 1}', *lines[3:]], "line 4"),
    ],
)
def test_a_bad_export_imports_nothing(source: str, tmp_path: Path, cut: object, says: str) -> None:
    file, bad = tmp_path / "store.jsonl", tmp_path / "bad.jsonl"
    invoke("export", source, str(file))
    bad.write_text("\n".join(cut(file.read_text().splitlines())) + "\n")  # type: ignore[operator]

    result = invoke("import", sqlite_url(tmp_path, "never"), str(bad))

    assert result.exit_code == 1
    assert says in result.output
    assert not (tmp_path / "never.db").exists()
