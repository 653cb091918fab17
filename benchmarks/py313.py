"""Finding a Python >= 3.13 with eventuality and eventsource-py, for the eventsource-py peer.

eventsource-py 0.15.1 needs Python >= 3.13; the benchmark itself may run on 3.11. Its contenders,
and eventuality measured beside them for the ratios, run in child processes (``child.py``) on the
interpreter found here, in this order:

1. ``--python PATH``: used as it is if it imports both eventuality (this checkout) and
   eventsource-py; otherwise the base interpreter of the venv below;
2. the running interpreter, if it is >= 3.13 and has both (``pip install -e ".[bench]"`` on 3.13);
3. ``benchmarks/.venv313``, made on first use from ``python3.13`` on the PATH (or pyenv's
   ``PYENV_VERSION=3.13.0 python3.13``) with ``pip install -e <this checkout>`` and
   ``eventsource-py==0.15.1``.

If none works, the eventsource-py contenders are skipped with the reason: never a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv313"
REQUIREMENT = "eventsource-py==0.15.1"  # as in pyproject.toml's bench extra

_PROBE = (
    "import sys, json, importlib.metadata as m, eventuality, eventsource; "
    "print(json.dumps([sys.version.split()[0], eventuality.__file__, m.version('eventsource-py')]))"
)


@dataclass(frozen=True)
class Found:
    """An interpreter that runs the eventsource-py contenders, or why there is none."""

    python: str | None
    version: str | None = None
    eventsource: str | None = None
    reason: str = ""


def _run(command: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> str | None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def probe(python: str) -> Found | None:
    """``python`` if it is >= 3.13 and imports this checkout's eventuality and eventsource-py."""
    import json

    out = _run([python, "-c", _PROBE], timeout=120)
    if not out:
        return None
    version, eventuality_file, eventsource = json.loads(out.splitlines()[-1])
    if tuple(int(p) for p in version.split(".")[:2]) < (3, 13):
        return None
    if Path(eventuality_file).resolve().parent != (ROOT / "eventuality").resolve():
        return None  # another checkout's eventuality: not the code measured here
    return Found(python, version, eventsource)


def _base_313(explicit: str | None) -> list[tuple[str, dict[str, str] | None]]:
    """Candidate 3.13 interpreters to build the venv from, with the environment to run them."""
    candidates: list[tuple[str, dict[str, str] | None]] = []
    if explicit:
        candidates.append((explicit, None))
    for name in ("python3.13", "python3.14"):
        if found := shutil.which(name):
            candidates.append((found, None))
            candidates.append((found, {**os.environ, "PYENV_VERSION": "3.13.0"}))
    return candidates


def _is_313(python: str, env: dict[str, str] | None) -> str | None:
    """The real executable behind ``python`` (a pyenv shim resolves here) if it is >= 3.13."""
    out = _run(
        [python, "-c", "import sys; print(sys.version_info >= (3, 13), sys.executable)"], env
    )
    if not out or not out.startswith("True "):
        return None
    return out.split(" ", 1)[1]


def find(explicit: str | None, log: Callable[[str], None]) -> Found:
    """The interpreter for the eventsource-py contenders; makes ``benchmarks/.venv313`` if it
    has to. ``explicit`` is ``--python`` ('none' skips the peer)."""
    if explicit == "none":
        return Found(None, reason="--python none")
    if explicit and (found := probe(explicit)):
        return found
    if sys.version_info >= (3, 13) and (found := probe(sys.executable)):
        return found
    venv_python = VENV / "bin" / "python"
    if venv_python.exists() and (found := probe(str(venv_python))):
        return found
    for candidate, env in _base_313(explicit):
        base = _is_313(candidate, env)
        if base is None:
            continue
        log(
            f"eventsource-py needs Python >= 3.13: making {VENV.relative_to(ROOT)} from {base} "
            f"(pip install -e . {REQUIREMENT}; once, a minute or so)"
        )
        if not venv_python.exists() and _run([base, "-m", "venv", str(VENV)], timeout=300) is None:
            return Found(None, reason=f"could not make a venv with {base}")
        installed = _run(
            [str(venv_python), "-m", "pip", "install", "-q", "-e", str(ROOT), REQUIREMENT],
            timeout=900,
        )
        if installed is None:
            return Found(None, reason=f"pip install into {VENV} failed (offline?)")
        if found := probe(str(venv_python)):
            return found
        return Found(None, reason=f"{VENV} does not import eventuality and eventsource-py")
    return Found(None, reason="no Python >= 3.13 found (python3.13, pyenv 3.13.0, --python)")
