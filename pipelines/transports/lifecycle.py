"""What every transport does around a call: run it, feed it, drain it, release it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from pipelines.events import OutboundEvent

if TYPE_CHECKING:
    from pipelines.runner import CallSession
    from server import Parley

CLOSE_POLICY = 1008
log = logging.getLogger("parley.transport")


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


def _connected(ws: WebSocket) -> bool:
    return ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED


async def drain_to_websocket(
    app: Parley,
    session: CallSession,
    ws: WebSocket,
    wire: Callable[[OutboundEvent], Iterable[str | bytes]],
    close: Callable[[int, str], Coroutine[Any, Any, None]],
) -> None:
    """Send the session's events (as ``wire`` frames them) until its outbox closes.

    Every event passes the supervisors' monitor first. A client that stops reading for
    ``send_timeout_s`` is closed (1008) and the call ended, never buffered for.
    """
    timeout = app.settings.send_timeout_s
    while True:
        try:
            event = await session.outbox.get()
        except EOFError:
            return
        app.monitor(session, event)
        if not _connected(ws):
            continue
        try:
            for data in wire(event):
                if isinstance(data, bytes):
                    await asyncio.wait_for(ws.send_bytes(data), timeout)
                else:
                    await asyncio.wait_for(ws.send_text(data), timeout)
        except TimeoutError:
            log.warning("call %s (%s): client stopped reading for %.1fs; closing", session.id, session.transport, timeout)
            session.end("client_stuck")
            await close(CLOSE_POLICY, "client is not reading")
            return
        except (WebSocketDisconnect, RuntimeError, OSError):
            session.hangup("disconnected")
