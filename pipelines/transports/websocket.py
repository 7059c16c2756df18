"""The ``/ws/call`` transport: moves frames between a Starlette WebSocket and a CallSession."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from pipelines import events as ev
from pipelines.codecs.wscall import CLOSE_POLICY, CallCodec, SessionEnd, SessionStart
from pipelines.errors import CapacityError, ParleyError, ProtocolViolation
from pipelines.transports.lifecycle import drain_to_websocket, serve_session

if TYPE_CHECKING:
    from pipelines.runner import CallSession
    from server import Parley

log = logging.getLogger("parley.ws")
CLOSE_TRY_AGAIN = 1013


async def _send(ws: WebSocket, data: str | bytes, timeout: float) -> None:
    if isinstance(data, bytes):
        await asyncio.wait_for(ws.send_bytes(data), timeout)
    else:
        await asyncio.wait_for(ws.send_text(data), timeout)


async def _send_error(ws: WebSocket, err: ParleyError, timeout: float) -> None:
    code = getattr(err, "code", "error")
    await _send(ws, CallCodec.encode(ev.ErrorEvent(code, str(err))), timeout)


class CallConnection:
    """One caller's WebSocket: validates input, feeds the session, drains its outbox."""

    def __init__(self, app: Parley, ws: WebSocket) -> None:
        self.app = app
        self.ws = ws
        s = app.settings
        self.codec = CallCodec(s.max_frame_bytes, s.max_text_bytes)
        self.offences = 0

    async def serve(self) -> None:
        await self.ws.accept()
        try:
            start = await self._await_start()
        except (TimeoutError, WebSocketDisconnect, ProtocolViolation) as exc:
            if isinstance(exc, ProtocolViolation):
                await self._close(exc.close_code or CLOSE_POLICY, exc.reason)
            elif isinstance(exc, asyncio.TimeoutError):
                await self._close(CLOSE_POLICY, "no session.start received in time")
            return
        try:
            session = await self.app.new_session(start, transport="websocket")
        except (CapacityError, ParleyError) as exc:
            await _send_error(self.ws, exc, self.app.settings.send_timeout_s)
            await self._close(CLOSE_TRY_AGAIN if isinstance(exc, CapacityError) else CLOSE_POLICY, str(exc))
            return
        try:
            await serve_session(self.app, session, lambda: self._receive(session), lambda: self._drain(session))
        finally:
            await self._close(1000, session.end_reason)

    async def _await_start(self) -> SessionStart:
        timeout = self.app.settings.start_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), max(0.01, deadline - loop.time()))
            if msg["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(msg.get("code", 1000))
            try:
                if msg.get("bytes") is not None:
                    self.codec.receive_bytes(msg["bytes"])
                    continue
                parsed = self.codec.receive_text(msg.get("text") or "")
            except ProtocolViolation as exc:
                await self._offence(exc)
                continue
            if isinstance(parsed, SessionStart):
                return parsed
            raise WebSocketDisconnect(1000)  # session.end before start: nothing to do

    async def _offence(self, exc: ProtocolViolation) -> None:
        if exc.close_code is not None:
            raise exc
        self.offences += 1
        await _send_error(self.ws, exc, self.app.settings.send_timeout_s)
        if self.offences >= self.app.settings.max_offences:
            raise ProtocolViolation("too_many_errors", f"{self.offences} malformed messages", CLOSE_POLICY)

    async def _receive(self, session: object) -> None:
        from pipelines.runner import CallSession

        assert isinstance(session, CallSession)
        while True:
            try:
                msg = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                session.hangup("disconnected")
                return
            if msg["type"] == "websocket.disconnect":
                session.hangup("disconnected")
                return
            try:
                if msg.get("bytes") is not None:
                    session.inbox.put(self.codec.receive_bytes(msg["bytes"]).samples)
                    continue
                parsed = self.codec.receive_text(msg.get("text") or "")
                if isinstance(parsed, SessionEnd):
                    session.hangup("caller_ended")
                    return
            except ProtocolViolation as exc:
                try:
                    await self._offence(exc)
                except ProtocolViolation as fatal:
                    session.hangup(fatal.code)
                    await self._close(fatal.close_code or CLOSE_POLICY, fatal.reason)
                    return

    async def _drain(self, session: CallSession) -> None:
        await drain_to_websocket(self.app, session, self.ws, lambda e: [CallCodec.encode(e)], self._close)

    async def _close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED and self.ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(code, reason[:120])
