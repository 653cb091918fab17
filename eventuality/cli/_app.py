"""The ``eventuality`` command group: the commands, and how each runs its async work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import click

from ..errors import EventualityError
from ._stores import CommandError

__all__ = ["cli", "run"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventuality")
def cli() -> None:
    """Look into an eventuality store, follow its log, copy, export and import it.

    Every command takes a store URL as open_store() does: sqlite:///relative.db,
    sqlite:////absolute.db, postgresql://user@host/db?schema=name. Passwords are never shown.
    """


def run(work: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``work`` on asyncio; an eventuality error becomes a one-line message and status 1."""
    try:
        return anyio.run(work)
    except EventualityError as exc:
        raise CommandError(str(exc)) from None


def _register() -> None:
    from . import _move, _read

    for command in (*_read.COMMANDS, *_move.COMMANDS):
        cli.add_command(command)


_register()
