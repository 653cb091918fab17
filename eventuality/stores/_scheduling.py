"""One scheduling point, cheaply: what the stores call on operations that would otherwise never
let the event loop run other tasks (an in-memory append, a commit made inline)."""

from __future__ import annotations

import asyncio

import anyio.lowlevel


async def yield_now() -> None:
    """anyio's checkpoint (a cancellation point that lets other tasks run), minus the look-up of
    the running event loop's library on every call: on asyncio it is ``sleep(0)``, as anyio's
    own asyncio backend does it. Called on every operation, so it is worth the shortcut."""
    if asyncio._get_running_loop() is not None:
        await asyncio.sleep(0)
    else:
        await anyio.lowlevel.checkpoint()
