"""``/ws/monitor``: every live call's events, as JSON, for supervisors' dashboards.

First message: ``{"type": "snapshot", "calls": [...]}`` (live calls with recent transcript,
emotion and alerts); then ``call.started``, ``call.ended`` and each call's events tagged with
``call_id``. Read-only: anything the client sends is ignored. A client too slow to keep up loses
its oldest messages (``{"type": "monitor.dropped", "count": N}`` tells it so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from starlette.websockets import WebSocket, WebSocketDisconnect

from pipelines.monitor import Monitor


async def serve_monitor(monitor: Monitor, ws: WebSocket, send_timeout_s: float) -> None:
    await ws.accept()
    sub = monitor.subscribe()

    async def discard_input() -> None:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                sub.close()
                return

    reader = asyncio.create_task(discard_input())
    reported = 0
    try:
        while True:
            try:
                msg = await sub.get()
            except EOFError:
                return
            if sub.dropped > reported:
                await asyncio.wait_for(ws.send_text(json.dumps({"type": "monitor.dropped", "count": sub.dropped - reported})), send_timeout_s)
                reported = sub.dropped
            await asyncio.wait_for(ws.send_text(json.dumps(msg, ensure_ascii=False)), send_timeout_s)
    except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        return
    finally:
        monitor.unsubscribe(sub)
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
        with contextlib.suppress(Exception):
            await ws.close()
