"""What every transport does around a call: run it, feed it, drain it, release it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.runner import CallSession
    from server import Parley


async def serve_session(
    app: Parley,
    session: CallSession,
    receive: Callable[[], Coroutine[Any, Any, None]],
    drain: Callable[[], Coroutine[Any, Any, None]],
) -> None:
    """Run ``session`` while ``receive()`` feeds it; when the caller side ends, let the session
    finish (its last turn is still transcribed and saved), drain what it has left to send, and
    release it. The caller closes the connection afterwards."""
    runner = asyncio.create_task(session.run())
    sender = asyncio.create_task(drain())
    try:
        await receive()
    finally:
        session.inbox.close()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(runner), timeout=app.settings.stage_timeout_s)
        if not runner.done():
            runner.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(sender, timeout=app.settings.send_timeout_s)
        app.release_session(session)
