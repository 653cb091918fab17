"""Child process for the projection-versions test: run version 1 until a later version retires it.

``python -m tests._versions_child PATH`` prints ``running`` once version 1 has caught up, then
``stopped`` when its ``run()`` returns (it does only when retired).
"""

import sys

import anyio

from eventuality import SQLiteEventStore
from tests.test_projection_versions import version_1


async def main(path: str) -> None:
    async with SQLiteEventStore(path) as store:
        projection = version_1(store)
        await projection.catch_up()
        print("running", flush=True)
        await projection.run()
        print("stopped", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
