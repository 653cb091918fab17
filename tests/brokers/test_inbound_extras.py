"""The broker clients are optional extras: ``import eventuality`` imports neither, and a
broker module without its client says which extra to install."""

import subprocess
import sys

import pytest


def test_importing_eventuality_imports_no_broker_client() -> None:
    code = (
        "import sys, eventuality, eventuality.inbound, eventuality.brokers\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('nats', 'aio_pika')))"
    )

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "client", "extra"),
    [("nats_inbound", "nats", "nats"), ("rabbitmq_inbound", "aio_pika", "rabbitmq")],
)
def test_a_broker_module_without_its_client_names_the_extra(
    module: str, client: str, extra: str
) -> None:
    code = f"import sys; sys.modules[{client!r}] = None\nimport eventuality.brokers.{module}\n"

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert done.returncode != 0
    assert f'pip install "eventuality[{extra}]"' in done.stderr
