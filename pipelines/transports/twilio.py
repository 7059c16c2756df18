"""The phone bridge: Twilio Media Streams on ``/ws/twilio`` and the ``/twilio/voice`` TwiML webhook.

Twilio calls ``/twilio/voice`` when a call comes in; the answer is ``<Connect><Stream>`` pointing at
``/ws/twilio``. Twilio then opens that WebSocket, sends ``connected`` and ``start``, and streams the
caller's audio; the agent's audio goes back as mu-law ``media``, with ``mark`` messages whose echoes
tell the session how much the caller has actually heard, and ``clear`` on barge-in.

Settings read here (with these defaults when absent): ``twilio_auth_token`` (``""``: signatures not
checked), ``public_url`` (``""``: derived from each request) and ``twilio_mark_ms`` (``100``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import numpy as np
from pydantic import ValidationError
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from pipelines import events as ev
from pipelines.audio import StreamResampler
from pipelines.codecs import twilio as tw
from pipelines.codecs import twiml
from pipelines.codecs.wscall import SessionStart
from pipelines.errors import CapacityError, ParleyError
from pipelines.transports.lifecycle import drain_to_websocket, serve_session

if TYPE_CHECKING:
    from pipelines.runner import CallSession
    from server import Parley

log = logging.getLogger("parley.twilio")
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
STREAM_PATH = "/ws/twilio"
VOICE_PATH = "/twilio/voice"
PASSED_PARAMETERS = ("language", "persona", "voice")  # webhook query -> <Parameter> -> session.start
MAX_WEBHOOK_BYTES = 65536  # Twilio's webhook form is a few hundred bytes
_LOG_EACH_DROP = 10  # drops logged one by one per connection; the rest only in the summary


def _text_setting(app: Parley, name: str) -> str:
    return str(getattr(app.settings, name, "") or "")


def public_base(app: Parley, conn: HTTPConnection) -> str:
    """The server's public root as Twilio sees it: ``public_url`` if set, else this request's scheme and host."""
    configured = _text_setting(app, "public_url").rstrip("/")
    if configured:
        return configured
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
    return f"{scheme}://{conn.url.netloc}"


def _ws_scheme(url: str) -> str:
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


def _signed_urls(app: Parley, conn: HTTPConnection) -> list[str]:
    """The URLs Twilio may have signed for this request. TLS usually ends at a proxy in front of
    Parley (and Stream URLs are always wss), so the https/wss forms are tried as well."""
    base = public_base(app, conn)
    query = f"?{conn.url.query}" if conn.url.query else ""
    url = f"{base}{conn.url.path}{query}"
    secure = "https://" + url.removeprefix("http://") if url.startswith("http://") else url
    urls = [url, secure]
    if conn.scope["type"] == "websocket":
        urls += [_ws_scheme(url), _ws_scheme(secure)]
    return list(dict.fromkeys(urls))


def _language(value: str) -> str:
    """Twilio apps often say ``en-US``; Parley picks its ASR model by the primary tag."""
    return value.split("-")[0].split("_")[0].lower()


class TwilioConnection:
    """One phone call's Media Stream: decodes Twilio's messages, feeds the session, drains its outbox.

    Malformed messages are dropped and counted in :attr:`dropped` (by error code); the call goes on.
    """

    def __init__(self, app: Parley, ws: WebSocket) -> None:
        self.app = app
        self.ws = ws
        self.codec = tw.TwilioCodec(app.settings.max_text_bytes)
        self.output = tw.TwilioOutput(self.codec, int(getattr(app.settings, "twilio_mark_ms", 100) or 100))
        self.dropped: Counter[str] = Counter()
        self.dtmf_digits = 0
        self.marks_confirmed = 0
        self.session: CallSession | None = None
        self._resampler: StreamResampler | None = None

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    async def serve(self) -> None:
        token = _text_setting(self.app, "twilio_auth_token")
        if token and not twiml.signature_valid(token, self.ws.headers.get("x-twilio-signature", ""), _signed_urls(self.app, self.ws)):
            log.warning("twilio stream from %s rejected: bad or missing X-Twilio-Signature", self.ws.client)
            await self.ws.close(CLOSE_POLICY)  # before accept: the handshake gets HTTP 403
            return
        await self.ws.accept()
        try:
            start = await self._await_start()
        except TimeoutError:
            await self._close(CLOSE_POLICY, "no start message received in time")
            return
        if start is not None:
            await self._call(start)
        else:
            await self._close(1000, "stream stopped before it started")
        self._summary()

    async def _await_start(self) -> tw.Start | None:
        """Twilio's ``start`` (``connected`` comes first), or ``None`` if the stream ended before it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.app.settings.start_timeout_s
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), max(0.01, deadline - loop.time()))
            if msg["type"] == "websocket.disconnect":
                return None
            try:
                event = self.codec.receive(msg["text"] if msg.get("text") is not None else msg.get("bytes") or b"")
            except tw.TwilioMessageError as exc:
                self._drop(exc)
                continue
            if isinstance(event, tw.Start):
                return event
            if isinstance(event, tw.Stop):
                return None

    def _session_start(self, start: tw.Start) -> SessionStart:
        params = start.custom_parameters
        chosen = {k: params[k] for k in PASSED_PARAMETERS if params.get(k)}
        if "language" in chosen:
            chosen["language"] = _language(chosen["language"])
        meta = {"callSid": start.call_sid, "streamSid": start.stream_sid, "accountSid": start.account_sid}
        base = {"type": "session.start", "audio": {"format": "pcm16", "sample_rate": tw.RATE}, "metadata": meta}
        try:
            return SessionStart.model_validate({**base, **chosen})
        except ValidationError as exc:
            log.warning("twilio call %s: ignoring invalid custom parameters %s: %s", start.call_sid, chosen, exc.errors()[0]["msg"])
            return SessionStart.model_validate(base)

    async def _call(self, start: tw.Start) -> None:
        try:
            session = await self.app.new_session(self._session_start(start), transport="twilio")
        except (CapacityError, ParleyError) as exc:
            log.warning("twilio call %s refused: %s", start.call_sid, exc)
            await self._close(CLOSE_TRY_AGAIN if isinstance(exc, CapacityError) else CLOSE_POLICY, str(exc))
            return
        self.session = session
        log.info("twilio call %s (stream %s) is Parley call %s", start.call_sid, start.stream_sid, session.id)
        if session.output_rate != tw.RATE:
            self._resampler = StreamResampler(session.output_rate, tw.RATE)
        try:
            await serve_session(self.app, session, lambda: self._receive(session), lambda: self._drain(session))
        finally:
            await self._close(1000, session.end_reason)

    async def _receive(self, session: CallSession) -> None:
        while True:
            try:
                msg = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                msg = {"type": "websocket.disconnect"}
            if msg["type"] == "websocket.disconnect":
                session.hangup("disconnected")
                return
            try:
                event = self.codec.receive(msg["text"] if msg.get("text") is not None else msg.get("bytes") or b"")
            except tw.TwilioMessageError as exc:
                self._drop(exc)
                continue
            if isinstance(event, tw.Media):
                if event.track in ("inbound", "inbound_track"):
                    session.inbox.put(event.samples)
            elif isinstance(event, tw.Mark):
                heard = self.output.heard(event.name)
                if heard is not None:
                    self.marks_confirmed += 1
                    session.confirm_played(*heard)
            elif isinstance(event, tw.Dtmf):
                self.dtmf_digits += 1
                session.dtmf(event.digit)
            elif isinstance(event, tw.Stop):
                session.hangup("caller_ended")
                return

    def _wire(self, event: ev.OutboundEvent) -> list[str]:
        """Twilio messages for one session event (Twilio has no channel for text events)."""
        match event:
            case ev.SessionCreated():
                return [self.codec.mark(f"session:{event.session_id}")]  # lets the Twilio side find the call
            case ev.AgentAudio():
                pcm = np.frombuffer(event.pcm, dtype="<i2")
                if self._resampler is not None:
                    pcm = self._resampler.process(pcm)
                return self.output.audio(pcm, event.turn_id)
            case ev.AgentAudioDone():
                tail = self._restart_resampler()
                return self.output.audio(tail, event.turn_id) + self.output.done(event.turn_id)
            case ev.AgentInterrupted():
                self._restart_resampler()
                return [self.output.clear(event.turn_id)]
        return []

    def _restart_resampler(self) -> np.ndarray:
        if self._resampler is None:
            return np.zeros(0, dtype=np.int16)
        tail = self._resampler.flush()
        self._resampler = StreamResampler(self._resampler.in_rate, tw.RATE)
        return tail

    async def _drain(self, session: CallSession) -> None:
        await drain_to_websocket(self.app, session, self.ws, self._wire, self._close)

    def _drop(self, exc: tw.TwilioMessageError) -> None:
        self.dropped[exc.code] += 1
        if self.dropped_total <= _LOG_EACH_DROP:
            log.warning("twilio stream %s: dropped a message (%s): %s", self._sid(), exc.code, exc.reason)

    def _sid(self) -> str:
        return self.codec.start.stream_sid if self.codec.start else "(not started)"

    def _summary(self) -> None:
        call = self.session.id if self.session else "-"
        level = logging.WARNING if self.dropped else logging.INFO
        log.log(
            level,
            "twilio stream %s (Parley call %s) closed: %d messages dropped %s, %d dtmf digits, %d media / %d marks sent, %d marks confirmed",
            self._sid(),
            call,
            self.dropped_total,
            dict(sorted(self.dropped.items())),
            self.dtmf_digits,
            self.output.media_sent,
            self.output.marks_sent,
            self.marks_confirmed,
        )

    async def _close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED and self.ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(code, reason[:120])


async def voice_webhook(app: Parley, request: Request) -> Response:
    """``GET|POST /twilio/voice``: TwiML connecting the call to ``/ws/twilio``.

    ``language``, ``persona`` and ``voice`` in the webhook's query string are passed on as
    ``<Parameter>``s. With ``twilio_auth_token`` set, a request without a valid signature gets 403.
    """
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        body = b""
        async with contextlib.aclosing(request.stream()) as parts:
            async for part in parts:
                body += part
                if len(body) > MAX_WEBHOOK_BYTES:
                    return PlainTextResponse("request body too large", status_code=413)
        form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    token = _text_setting(app, "twilio_auth_token")
    if token and not twiml.signature_valid(token, request.headers.get("x-twilio-signature", ""), _signed_urls(app, request), form):
        log.warning("twilio webhook from %s rejected: bad or missing X-Twilio-Signature", request.client)
        return PlainTextResponse("invalid X-Twilio-Signature", status_code=403)
    params = {k: v[:64] for k, v in request.query_params.items() if k in PASSED_PARAMETERS and v}
    stream_url = _ws_scheme(public_base(app, request)) + STREAM_PATH
    return Response(twiml.connect_stream_twiml(stream_url, params), media_type="application/xml")


def twilio_routes(app: Parley) -> list[BaseRoute]:
    """The ``/ws/twilio`` stream and the ``/twilio/voice`` webhook, bound to ``app``."""

    async def stream(ws: WebSocket) -> None:
        await TwilioConnection(app, ws).serve()

    async def voice(request: Request) -> Response:
        return await voice_webhook(app, request)

    return [WebSocketRoute(STREAM_PATH, stream), Route(VOICE_PATH, voice, methods=["GET", "POST"])]
