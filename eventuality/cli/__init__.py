"""The ``eventuality`` command: look into a store, follow its log, copy, export and import it.

Installed with the ``cli`` extra (click for the commands, rich for tables and progress bars):
``pip install "eventuality[cli]"``. The script itself ships with the package, so running it
without the extra says what to install instead of failing with an import error.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_MISSING = (
    "eventuality: the command-line tool needs the cli extra ({missing} is not installed).\n"
    '  pip install "eventuality[cli]"\n'
)


def main(argv: list[str] | None = None) -> None:
    """Run the command (the console script's entry point)."""
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError as exc:
        sys.stderr.write(_MISSING.format(missing=exc.name or "click or rich"))
        raise SystemExit(2) from None
    from ._app import cli

    cli.main(args=argv, prog_name="eventuality")
