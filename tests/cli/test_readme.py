"""The README's "Outgrowing SQLite" commands, run as written (with the test's own schema)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests._readme import README
from tests.cli.conftest import postgres_url
from tests.conftest import requires_postgres

ROOT = Path(__file__).resolve().parents[2]
README_URL = "postgresql://postgres@127.0.0.1:5432/test?schema=todo"


def shell_block(marker: str) -> list[str]:
    pattern = rf"<!-- {re.escape(marker)} -->\n```sh\n(.*?)```"
    found = re.search(pattern, README.read_text(), re.DOTALL)
    assert found is not None, f"README.md lost its {marker} block"
    return [line for line in found.group(1).splitlines() if line.strip()]


@requires_postgres
def test_outgrowing_sqlite_runs_as_the_readme_says(tmp_path: Path) -> None:
    outputs = []
    for line in shell_block("cli-outgrow"):
        words = [postgres_url(tmp_path) if w == README_URL else w for w in shlex.split(line)]
        if words[0] == "python":
            words = [sys.executable, str(ROOT / words[1]), *words[2:]]
        elif words[0] == "eventuality":
            words = [sys.executable, "-m", "eventuality.cli", *words[1:]]
        done = subprocess.run(words, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)

    assert "verify: OK" in outputs[2]
    assert "(2 events already stored)" in outputs[3]
    assert "todo2: 'Create todo number 2' completed=True version=2" in outputs[3]
