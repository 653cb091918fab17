"""eventuality.testing's public surface: sorted, complete, and free of pytest."""

import inspect
import subprocess
import sys

import eventuality.testing as testing


def test_all_is_sorted_and_names_what_the_module_holds() -> None:
    assert testing.__all__ == sorted(testing.__all__)
    assert all(hasattr(testing, name) for name in testing.__all__)


def test_public_classes_and_functions_report_the_module_users_import_from() -> None:
    named = [getattr(testing, name) for name in testing.__all__]

    modules = {
        value.__module__ for value in named if isinstance(value, type) or inspect.isfunction(value)
    }

    assert modules == {"eventuality.testing"}


def test_importing_it_does_not_import_pytest() -> None:
    code = "import sys, eventuality.testing; print('pytest' in sys.modules)"

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert done.stdout.strip() == "False", done.stderr
