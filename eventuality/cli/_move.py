"""The commands that move a store: ``copy`` (to another backend), ``export`` and ``import``
(JSON Lines, ``-`` for stdout or stdin). Each verifies or checks what it did."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from typing import IO

import click

from ..errors import StoreUsageError
from ..stores._transfer_checkpoints import CheckpointPlan
from ..stores._transfer_jsonl import export_store, import_store, read_export
from ..stores._transfer_tables import dialect_of
from ..stores.base import redact_dsn
from ..stores.transfer import CopyResult, copy_store, versioned_projections
from ._app import run
from ._output import note, progress_bar
from ._stores import CommandError, opened

__all__ = ["COMMANDS"]

_REBUILD = click.option(
    "--rebuild",
    "rebuild",
    multiple=True,
    metavar="NAME",
    help="A projection to rebuild on the target: its checkpoints stay behind (repeatable).",
)
_KEEP = click.option(
    "--keep",
    "keep",
    multiple=True,
    metavar="NAME",
    help="A subscription to go on where it was: its checkpoints are carried (repeatable).",
)


@click.command()
@click.argument("source_url")
@click.argument("target_url")
@_REBUILD
@_KEEP
@click.option("--no-verify", is_flag=True, help="Skip reading both stores back to compare them.")
def copy(
    source_url: str, target_url: str, rebuild: tuple[str, ...], keep: tuple[str, ...],
    no_verify: bool,
) -> None:  # fmt: skip
    """Copy a whole store to another one, SQLite to PostgreSQL for example.

    Keeps event ids, stream versions, log order, snapshots, deleted and archived streams,
    recorded commands and personal-data keys. Read models (a projection's tables) are not
    copied: name each subscription with a checkpoint, --rebuild NAME for a projection (it
    starts again from the first event on the target) or --keep NAME for one to go on where it
    was (its checkpoint moved to the same event). The target must be empty, or hold what an
    interrupted copy of the same source left: the copy then goes on from there. At the end
    both stores are read back and compared (counts and a digest per stream); a difference
    exits with status 1.
    """
    if redact_dsn(source_url) == redact_dsn(target_url):
        raise CommandError("the source and the target are the same store: nothing to copy")
    _plan(rebuild, keep)

    async def work() -> CopyResult:
        async with opened(source_url) as source:
            plan = _plan(rebuild, keep)
            reading = dialect_of(source, "copy a store")
            names = [name for name, _, _ in await reading.checkpoints()]
            plan.check(names, await versioned_projections(reading))  # before the target opens
            async with opened(target_url, must_exist=False) as target:
                with progress_bar("copying events") as progress:
                    return await copy_store(
                        source, target, rebuild=rebuild, keep=keep, progress=progress,
                        verify=not no_verify,
                    )  # fmt: skip

    result = run(work)
    _report(result, f"{redact_dsn(source_url)} -> {redact_dsn(target_url)}")


def _report(result: CopyResult, what: str) -> None:
    resumed = f" (resumed: {result.already_there} were there)" if result.already_there else ""
    click.echo(f"copied {result.events} events{resumed}: {what}")
    carried = ", ".join(f"{count} {name}" for name, count in result.carried.items())
    click.echo(f"carried {carried}")
    if result.kept:
        click.echo(f"checkpoints kept (going on at the same event): {', '.join(result.kept)}")
    if result.rebuilt:
        click.echo(
            f"checkpoints left behind (rebuilt from the first event): {', '.join(result.rebuilt)}"
        )
    if not result.verified:
        return
    if result.problems:
        click.echo("verify: MISMATCH", err=True)
        for line in result.problems:
            click.echo(f"  {line}", err=True)
        raise SystemExit(1)
    click.echo("verify: OK (every stream's count and digest, log order, and the rest match)")


@click.command(name="export")
@click.argument("url")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--no-keys", is_flag=True, help="Leave personal-data keys out: personal fields read as masks."
)
def export_(url: str, file: str, no_keys: bool) -> None:
    """Write the whole store as JSON Lines to FILE (- for stdout).

    The file holds the personal-data keys unless --no-keys: keep it as safe as the database.
    """

    async def work(out: IO[str]) -> int:
        async with opened(url) as store:
            with progress_bar("exporting events") as progress:
                return await export_store(
                    store,
                    out.write,
                    keys=not no_keys,
                    progress=progress,
                )

    if file == "-":
        count = run(lambda: work(sys.stdout))
    else:
        with open(file, "w", encoding="utf-8") as out:
            count = run(lambda: work(out))
    note(f"exported {count} events from {redact_dsn(url)}")


@click.command(name="import")
@click.argument("url")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, exists=False))
@_REBUILD
@_KEEP
def import_(url: str, file: str, rebuild: tuple[str, ...], keep: tuple[str, ...]) -> None:
    """Read an export (FILE, or - for stdin) into the store at URL.

    The store must be empty (or hold what an interrupted import of the same file left). The
    whole file is checked before anything is written: a bad or cut-off file imports nothing.
    Each subscription with a checkpoint must be named, as for copy: --rebuild NAME or --keep
    NAME.
    """
    _plan(rebuild, keep)
    with _readable(file) as path:

        def lines() -> Iterable[str]:
            with open(path, encoding="utf-8") as found:
                yield from found

        total = run(lambda: _checked(lines, rebuild, keep))  # before the store is opened

        async def work() -> CopyResult:
            async with opened(url, must_exist=False) as store:
                with progress_bar("importing events") as progress:
                    return await import_store(
                        store, lines, rebuild=rebuild, keep=keep, check=False,
                        progress=lambda done, _: progress(done, total),
                    )  # fmt: skip

        result = run(work)
    _report(result, f"{'stdin' if file == '-' else file} -> {redact_dsn(url)}")


async def _checked(
    lines: Callable[[], Iterable[str]], rebuild: tuple[str, ...], keep: tuple[str, ...]
) -> int:
    """The export's event count, once the whole file and the checkpoint names are checked."""
    _, count, extras = read_export(lines())
    _plan(rebuild, keep).check(name for name, _ in extras.checkpoints)
    return count


def _plan(rebuild: tuple[str, ...], keep: tuple[str, ...]) -> CheckpointPlan:
    try:
        return CheckpointPlan.of(rebuild, keep)
    except StoreUsageError as exc:
        raise CommandError(str(exc)) from None


class _readable:
    """The path of the export: the file itself, or stdin spooled to a temporary file (the
    import reads it twice: once to check it, once to write)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.spool: IO[str] | None = None

    def __enter__(self) -> str:
        if self.file != "-":
            try:
                with open(self.file, encoding="utf-8"):
                    pass
            except OSError as exc:
                raise CommandError(f"cannot read {self.file!r}: {exc.strerror or exc}") from None
            return self.file
        self.spool = tempfile.NamedTemporaryFile("w+", encoding="utf-8", suffix=".jsonl")
        shutil.copyfileobj(sys.stdin, self.spool)
        self.spool.flush()
        return self.spool.name

    def __exit__(self, *exc: object) -> None:
        if self.spool is not None:
            self.spool.close()


COMMANDS: list[click.Command] = [copy, export_, import_]
