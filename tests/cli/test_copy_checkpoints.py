"""copy and import never carry a checkpoint blindly: each subscription with one is named, to be
rebuilt on the target (all its checkpoints, versions and partitions, stay behind) or kept."""

from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from eventuality import open_store
from eventuality.cli._app import cli
from eventuality.stores._transfer_checkpoints import CheckpointPlan, subscription_of
from tests.cli._populate import TodoCreatedElsewhere
from tests.cli.conftest import sqlite_url, url_of

PROJECTION = ["todo-list", "todo-list@v2", "todo-list@v2#0/2", "todo-list@v2#partitions"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


async def _fill(url: str) -> None:
    """Three events; a versioned, partitioned projection's checkpoints and a subscription's."""
    async with open_store(url) as store:
        for n in range(3):
            await store.append(f"Other-{n}", [TodoCreatedElsewhere(description=str(n))])
        for name in [*PROJECTION, "emails"]:
            await store.set_checkpoint(name, 2, expected=None)
        async with store.transaction() as tx:
            await tx.execute(
                "CREATE TABLE eventuality_projection_versions "
                "(name TEXT PRIMARY KEY, live INTEGER NOT NULL, tables TEXT NOT NULL)"
            )
            await tx.execute(
                "INSERT INTO eventuality_projection_versions VALUES ('todo-list', 2, 'todo_list')"
            )


async def _checkpoints(url: str) -> dict[str, int | None]:
    async with open_store(url) as store:
        return {n: await store.get_checkpoint(n) for n in [*PROJECTION, "emails"]}


async def _events_at_or_below(url: str, name: str) -> int:
    async with open_store(url) as store:
        checkpoint = await store.get_checkpoint(name) or 0
        return len([r async for r in store.read_all_records() if r.position <= checkpoint])


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = sqlite_url(tmp_path, "source")
    anyio.run(_fill, url)
    return url


@pytest.mark.parametrize(
    ("checkpoint", "subscription"),
    [
        ("todo-list", "todo-list"),
        ("todo-list@v2", "todo-list"),
        ("todo-list#0/4", "todo-list"),
        ("todo-list#partitions", "todo-list"),
        ("todo-list@v3#1/2", "todo-list"),
        ("todo-list@v2#partitions", "todo-list"),
        ("a#b", "a#b"),
        ("a@vx", "a@vx"),
    ],
)
def test_a_checkpoint_belongs_to_its_subscription(checkpoint: str, subscription: str) -> None:
    assert subscription_of(checkpoint) == subscription


def test_copy_refuses_checkpoints_nobody_named_and_creates_no_target(
    source: str, tmp_path: Path
) -> None:
    result = invoke("copy", source, sqlite_url(tmp_path, "target"), "--keep", "emails")

    assert result.exit_code == 1
    assert "'todo-list' (a versioned projection)" in result.output
    assert "'emails'" not in result.output.split("say what")[0]
    assert "--rebuild NAME" in result.output
    assert "Nothing was written" in result.output
    assert not (tmp_path / "target.db").exists()


def test_a_rebuilt_projection_leaves_every_checkpoint_behind_and_a_kept_one_moves(
    source: str, kind: str, tmp_path: Path
) -> None:
    target = url_of(kind, tmp_path, "target")

    result = invoke("copy", source, target, "--rebuild", "todo-list", "--keep", "emails")

    assert result.exit_code == 0, result.output
    assert "verify: OK" in result.output
    assert "checkpoints kept (going on at the same event): emails" in result.output
    assert f"left behind (rebuilt from the first event): {', '.join(PROJECTION)}" in result.output
    found = anyio.run(_checkpoints, target)
    assert found == {**dict.fromkeys(PROJECTION), "emails": found["emails"]}
    assert anyio.run(_events_at_or_below, target, "emails") == 2  # the same event


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--rebuild", "todo_list", "--keep", "emails"], "no checkpoint of 'todo_list'"),
        (["--rebuild", "todo-list", "--keep", "todo-list"], "both rebuilt and kept"),
        (["--rebuild", "todo-list#0/2", "--keep", "emails"], "name the subscription ('todo-list')"),
    ],
)
def test_bad_names_are_refused_and_write_nothing(
    source: str, tmp_path: Path, args: list[str], says: str
) -> None:
    result = invoke("copy", source, sqlite_url(tmp_path, "target"), *args)

    assert result.exit_code == 1
    assert says in result.output
    assert not (tmp_path / "target.db").exists()


def test_import_names_checkpoints_as_copy_does(source: str, tmp_path: Path) -> None:
    file, target = tmp_path / "store.jsonl", sqlite_url(tmp_path, "imported")
    invoke("export", source, str(file))

    refused = invoke("import", target, str(file), "--rebuild", "todo-list")
    imported = invoke("import", target, str(file), "--rebuild", "todo-list", "--keep", "emails")

    assert refused.exit_code == 1
    assert "checkpoints of 'emails'" in refused.output
    assert imported.exit_code == 0, imported.output
    found = anyio.run(_checkpoints, target)
    assert [name for name, at in found.items() if at is not None] == ["emails"]


def test_a_store_without_checkpoints_needs_no_names(tmp_path: Path) -> None:
    source = sqlite_url(tmp_path, "plain")

    async def fill() -> None:
        async with open_store(source) as store:
            await store.append("Other-1", [TodoCreatedElsewhere(description="x")])

    anyio.run(fill)

    result = invoke("copy", source, sqlite_url(tmp_path, "target"))

    assert result.exit_code == 0, result.output
    assert "carried 0 checkpoints" in result.output
    assert "kept" not in result.output
    assert "left behind" not in result.output


def test_the_plan_refuses_a_str_for_a_list() -> None:
    with pytest.raises(TypeError, match="lists of names"):
        CheckpointPlan.of(rebuild="todo-list")
