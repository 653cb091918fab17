"""examples/test_todo_domain.py passes as users run it, and a wrong expectation in it fails with
a diff in pytest's report."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "test_todo_domain.py"


def _pytest(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_example_passes_as_users_run_it() -> None:
    done = _pytest(["-q", "examples/test_todo_domain.py"], ROOT)

    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout


def test_a_wrong_expectation_fails_with_a_diff_in_the_report(tmp_path: Path) -> None:
    source = EXAMPLE.read_text()
    wrong = source.replace(
        "when(lambda t: t.complete()).then(TodoCompleted())",
        "when(lambda t: t.complete()).then(TodoRenamed(description='z'))",
    )
    assert wrong != source, "the example lost its completion test"
    (tmp_path / "test_todo_domain.py").write_text(wrong)

    done = _pytest(["-q", "test_todo_domain.py"], tmp_path)

    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "recorded events differ from the expected (- expected, + actual):\n"
        "E       - TodoRenamed(description='z')\n"
        "E       + TodoCompleted()"
    ) in done.stdout
    assert "_compare.py" not in done.stdout  # the helpers' own frames are hidden
