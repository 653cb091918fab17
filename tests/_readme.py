"""The README's runnable examples: each is a ```python block after a ``<!-- name -->`` marker."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    """The code block after ``<!-- marker -->`` in README.md."""
    pattern = rf"<!-- {re.escape(marker)} -->\n```python\n(.*?)```"
    block = re.search(pattern, README.read_text(), re.DOTALL)
    assert block is not None, f"README.md lost its {marker} block"
    return block.group(1)


def run_python(folder: Path, *args: str) -> str:
    """Run ``python *args`` in a fresh interpreter in ``folder``, as a user would; return its
    output (failing with its stderr if it fails)."""
    done = subprocess.run(
        [sys.executable, *args], cwd=folder, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
