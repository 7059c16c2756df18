"""The WebRTC transport (aiortc): ``POST /webrtc/offer`` -> SDP answer; Opus audio both ways on one
peer connection, and the same JSON events as ``/ws/call`` on a data channel.

The browser (or any WebRTC peer) adds one audio track and creates a data channel (any label;
``events`` by convention) *before* making the offer. Server events arrive on that channel as JSON
text; the peer may send ``{"type": "session.end"}`` on it. Closing the peer connection ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pipelines import events as ev
from pipelines.audio import StreamResampler
from pipelines.codecs.wscall import AudioFormat, SessionStart, event_to_json
from pipelines.errors import CapacityError, ProtocolViolation

if TYPE_CHECKING:
    from pipelines.runner import CallSession
    from server import Parley

log = logging.getLogger("parley.webrtc")
RATE = 48000  # Opus in WebRTC is 48 kHz
PTIME_S = 0.02


class Offer(BaseModel):
    """``POST /webrtc/offer`` body: the SDP offer and the same call options as ``session.start``."""

    model_config = ConfigDict(extra="ignore")
    sdp: str = Field(min_length=10, max_length=100_000)
    type: str = "offer"
    language: str = Field(default="en", min_length=2, max_length=8)
    persona: str | None = None
    voice: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class PacedAudioTrack(MediaStreamTrack):
    """An audio track that hands out 20 ms frames of 48 kHz mono on the media clock.

    Subclasses implement :meth:`_take` (exactly ``n`` int16 samples; zeros when there is nothing).
    """

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pts = 0
        self._start: float | None = None

    def _take(self, n: int) -> np.ndarray:
        raise NotImplementedError

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = int(RATE * PTIME_S)
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += n
            wait = self._start + self._pts / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        frame = AudioFrame.from_ndarray(self._take(n).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class AgentAudioTrack(PacedAudioTrack):
    """Outbound audio: 20 ms frames at 48 kHz on the media clock, silence when the agent is quiet.

    :meth:`feed` queues PCM16 mono at 48 kHz; :meth:`clear` drops what is queued (barge-in).
    ``played_ms`` counts agent audio actually handed to the encoder.
    """

    def __init__(self) -> None:
        super().__init__()
        self._buf: deque[np.ndarray] = deque()
        self._samples = 0
        self.played_samples = 0
        self.turn_id = 0
        self.on_played: Callable[[int, float], None] | None = None  # (turn_id, ms handed to the encoder)

    def feed(self, pcm: np.ndarray, turn_id: int) -> None:
        if turn_id != self.turn_id:
            self.turn_id = turn_id
            self.played_samples = 0
        self._buf.append(pcm)
        self._samples += len(pcm)

    def clear(self) -> None:
        self._buf.clear()
        self._samples = 0

    def _take(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        while filled < n and self._buf:
            head = self._buf[0]
            k = min(n - filled, len(head))
            out[filled : filled + k] = head[:k]
            filled += k
            if k == len(head):
                self._buf.popleft()
            else:
                self._buf[0] = head[k:]
        self._samples -= filled
        self.played_samples += filled
        if filled and self.on_played is not None:
            self.on_played(self.turn_id, self.played_samples * 1000 / RATE)
        return out



def frame_to_mono(frame: AudioFrame) -> np.ndarray:
    """int16 mono samples of a decoded frame (packed or planar, mono or stereo)."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if data.dtype != np.int16:
        data = (np.clip(data.astype(np.float32), -1, 1) * 32767).astype(np.int16)
    if frame.format.is_planar:
        return np.asarray(data[0], dtype=np.int16)
    flat = data.reshape(-1)
    if channels > 1:
        flat = flat.reshape(-1, channels)[:, 0]
    return np.ascontiguousarray(flat, dtype=np.int16)


class WebRTCCall:
    """One peer connection bound to one CallSession."""

    def __init__(self, app: Parley, pc: RTCPeerConnection, session: CallSession) -> None:
        self.app = app
        self.pc = pc
        self.session = session
        self.track = AgentAudioTrack()
        self.track.on_played = session.confirm_played
        self.channel: Any = None
        self._pending: list[str] = []
        self._resampler = StreamResampler(session.output_rate, RATE) if session.output_rate != RATE else None
        self._tasks: list[asyncio.Task[Any]] = []
        self.closed = asyncio.Event()

    def send_json(self, event: ev.OutboundEvent) -> None:
        text = json.dumps(event_to_json(event), ensure_ascii=False, separators=(",", ":"))
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(text)
        else:
            self._pending.append(text)

    def on_channel(self, channel: Any) -> None:
        self.channel = channel

        channel.add_listener("open", self._flush_pending)
        channel.add_listener("message", self._on_message)
        if channel.readyState == "open":
            self._flush_pending()

    def _on_message(self, msg: Any) -> None:
        if not isinstance(msg, str):
            return
        try:
            kind = json.loads(msg).get("type")
        except (json.JSONDecodeError, AttributeError):
            self.send_json(ev.ErrorEvent("invalid_json", "data channel messages must be JSON objects"))
            return
        if kind == "session.end":
            self.session.hangup("caller_ended")
        else:
            self.send_json(ev.ErrorEvent("unknown_type", f"unknown message type {kind!r}"))

    def _flush_pending(self) -> None:
        while self._pending and self.channel is not None and self.channel.readyState == "open":
            self.channel.send(self._pending.pop(0))

    async def pump_input(self, track: MediaStreamTrack) -> None:
        """Decoded caller audio -> the session's inbox (48 kHz mono int16)."""
        resampler: StreamResampler | None = None
        rate = RATE
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, AudioFrame):
                    continue
                samples = frame_to_mono(frame)
                if frame.sample_rate != rate or resampler is None:
                    rate = int(frame.sample_rate)
                    resampler = StreamResampler(rate, RATE)
                self.session.inbox.put(resampler.process(samples))
        except MediaStreamError:
            self.session.hangup("disconnected")

    async def drain(self) -> None:
        """Session events -> data channel (JSON) and the outbound track (audio)."""
        while True:
            try:
                event = await self.session.outbox.get()
            except EOFError:
                return
            self.app.monitor(self.session, event)
            if isinstance(event, ev.AgentAudio):
                pcm = np.frombuffer(event.pcm, dtype="<i2")
                self.track.feed(self._resampler.process(pcm) if self._resampler else pcm, event.turn_id)
                continue
            if isinstance(event, ev.AgentInterrupted):
                self.track.clear()
            self.send_json(event)

    async def serve(self) -> None:
        runner = asyncio.create_task(self.session.run())
        drain = asyncio.create_task(self.drain())
        try:
            await runner
        finally:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(drain, self.app.settings.send_timeout_s)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.app.release_session(self.session)
            self.track.stop()
            await self.pc.close()
            self.closed.set()


def _ice_servers(raw: str) -> list[RTCIceServer]:
    """``PARLEY_ICE_SERVERS``: JSON list of ``{"urls": ..., "username": ..., "credential": ...}``."""
    if not raw:
        return []
    return [RTCIceServer(**s) for s in json.loads(raw)]


async def handle_offer(app: Parley, request: Request) -> Response:
    """``POST /webrtc/offer``: create the call and answer with SDP (ICE gathered, no trickle)."""
    try:
        body = await request.body()
        if len(body) > 200_000:
            return JSONResponse({"error": "offer_too_large", "message": "offer over 200 kB"}, status_code=413)
        offer = Offer.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return JSONResponse({"error": "invalid_offer", "message": f"{where}: {first['msg']}"}, status_code=400)
    if offer.type != "offer" or "m=audio" not in offer.sdp:
        return JSONResponse({"error": "invalid_offer", "message": "expected an SDP offer with an audio m-line"}, status_code=400)
    start = SessionStart(type="session.start", audio=AudioFormat(sample_rate=RATE), language=offer.language, persona=offer.persona, voice=offer.voice, metadata=offer.metadata)
    try:
        session = await app.new_session(start, transport="webrtc")
    except CapacityError as exc:
        return JSONResponse({"error": "capacity", "message": str(exc)}, status_code=503)
    except ProtocolViolation as exc:
        return JSONResponse({"error": exc.code, "message": exc.reason}, status_code=400)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=_ice_servers(getattr(app.settings, "ice_servers", ""))))
    call = WebRTCCall(app, pc, session)
    pc.addTrack(call.track)

    @pc.on("datachannel")
    def _on_datachannel(channel: Any) -> None:
        call.on_channel(channel)

    @pc.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            call._tasks.append(asyncio.create_task(call.pump_input(track)))

    started = False

    @pc.on("connectionstatechange")
    async def _on_state() -> None:
        nonlocal started
        if pc.connectionState == "connected" and not started:
            started = True  # the greeting waits for media to flow
            app.background(call.serve())
        elif pc.connectionState in ("failed", "closed"):
            if started:
                session.hangup("disconnected")
            else:
                await _abandon()

    async def _abandon() -> None:
        app.release_session(session)
        await pc.close()

    async def _watchdog() -> None:
        await asyncio.sleep(getattr(app.settings, "webrtc_connect_timeout_s", 30.0))
        if not started:
            log.info("webrtc: peer never connected; dropping session %s", session.id)
            await _abandon()

    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as exc:  # malformed SDP and the like
        app.release_session(session)
        await pc.close()
        return JSONResponse({"error": "invalid_offer", "message": f"could not negotiate: {exc}"}, status_code=400)
    app.background(_watchdog())
    local = pc.localDescription
    return JSONResponse({"sdp": local.sdp, "type": local.type, "session_id": session.id})
