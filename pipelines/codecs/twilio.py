"""Sans-I/O codec for Twilio Media Streams (bidirectional, ``<Connect><Stream>``).

Twilio -> Parley: JSON text messages ``connected``, ``start``, ``media``, ``dtmf``, ``mark``, ``stop``.
Feed each one to :meth:`TwilioCodec.receive`; it returns a typed event or raises
:class:`TwilioMessageError`, which the transport counts and drops (the call goes on).

Parley -> Twilio: ``media`` (base64 G.711 mu-law, 8 kHz mono), ``mark`` and ``clear``.
:class:`TwilioOutput` cuts agent audio into 20 ms ``media`` messages, puts a ``mark`` after every
``mark_ms`` of audio, and turns Twilio's echo of a mark (sent once the audio before it has played)
into "the caller has heard N ms of reply T".

G.711 mu-law is table-driven numpy (``audioop`` is gone from Python 3.13). The webhook side
(TwiML, ``X-Twilio-Signature``) is in :mod:`pipelines.codecs.twiml`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from pipelines.errors import ProtocolViolation

RATE = 8000
CHUNK_SAMPLES = 160  # 20 ms at 8 kHz: one mu-law byte per sample
CHUNK_MS = 20
MULAW_ENCODING = "audio/x-mulaw"

# ---- G.711 mu-law ------------------------------------------------------------------------------

_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _encode_table() -> np.ndarray:
    """Code for every int16 value, indexed by the value's uint16 bit pattern (G.711 on the 14-bit magnitude)."""
    linear = np.arange(-32768, 32768, dtype=np.int32)
    x = linear >> 2  # G.711 mu-law encodes 14-bit linear samples
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), 8159) + 33  # clip, then add the bias (0x84 >> 2)
    seg = np.searchsorted(_SEG_END, mag)  # segment 8 means beyond the top segment: saturate
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> np.minimum(seg + 1, 8)) & 0x0F))
    table = np.empty(65536, dtype=np.uint8)
    table[linear.astype(np.int16).view(np.uint16)] = (code ^ mask).astype(np.uint8)
    return table


def _decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


_ENCODE = _encode_table()
_DECODE = _decode_table()


def ulaw_encode(samples: np.ndarray) -> bytes:
    """PCM16 samples -> G.711 mu-law, one byte per sample (0 -> 0xFF, 32767 -> 0x80, -32768 -> 0x00)."""
    pcm = np.ascontiguousarray(samples, dtype=np.int16)
    return bytes(_ENCODE[pcm.view(np.uint16)].tobytes())


def ulaw_decode(data: bytes) -> np.ndarray:
    """G.711 mu-law bytes -> int16 samples (0xFF and 0x7F -> 0, 0x80 -> 32124, 0x00 -> -32124)."""
    return np.asarray(_DECODE[np.frombuffer(data, dtype=np.uint8)], dtype=np.int16)


# ---- Twilio -> Parley: wire models (Twilio's field names) ----------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")  # Twilio may add fields; the ones used are checked


class _MediaFormat(_Wire):
    encoding: str
    sampleRate: int
    channels: int = 1


class _StartBody(_Wire):
    streamSid: str = Field(min_length=1, max_length=64)
    accountSid: str = ""
    callSid: str = ""
    tracks: list[str] = Field(default_factory=lambda: ["inbound"])
    customParameters: dict[str, str] = Field(default_factory=dict)
    mediaFormat: _MediaFormat


class _MediaBody(_Wire):
    track: str = "inbound"
    chunk: int | None = None
    timestamp: int | None = None
    payload: str


class _DtmfBody(_Wire):
    track: str = "inbound_track"
    digit: str = Field(pattern=r"^[0-9*#A-Da-d]$")


class _MarkBody(_Wire):
    name: str = Field(max_length=256)


class _StopBody(_Wire):
    accountSid: str = ""
    callSid: str = ""


class _Message(_Wire):
    sequenceNumber: int | None = None
    streamSid: str | None = None


class _ConnectedMsg(_Message):
    event: Literal["connected"]
    protocol: str = ""
    version: str = ""


class _StartMsg(_Message):
    event: Literal["start"]
    start: _StartBody


class _MediaMsg(_Message):
    event: Literal["media"]
    media: _MediaBody


class _DtmfMsg(_Message):
    event: Literal["dtmf"]
    dtmf: _DtmfBody


class _MarkMsg(_Message):
    event: Literal["mark"]
    mark: _MarkBody


class _StopMsg(_Message):
    event: Literal["stop"]
    stop: _StopBody = _StopBody()


_Inbound = _ConnectedMsg | _StartMsg | _MediaMsg | _DtmfMsg | _MarkMsg | _StopMsg
_adapter: TypeAdapter[_Inbound] = TypeAdapter(Annotated[_Inbound, Field(discriminator="event")])
EVENTS = ("connected", "start", "media", "dtmf", "mark", "stop")


# ---- Twilio -> Parley: typed events --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    """The stream began: ids, expected tracks and the ``<Parameter>`` values from the TwiML."""

    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    custom_parameters: dict[str, str]


@dataclass(frozen=True, slots=True)
class Media:
    """Caller audio: int16 samples at 8 kHz. ``track`` is ``inbound`` on a ``<Connect><Stream>``."""

    samples: np.ndarray
    track: str
    chunk: int | None
    timestamp_ms: int | None


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str
    track: str


@dataclass(frozen=True, slots=True)
class Mark:
    """Twilio played everything sent before our ``mark`` of this name (or a ``clear`` dropped it)."""

    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    call_sid: str
    account_sid: str


TwilioEvent = Connected | Start | Media | Dtmf | Mark | Stop


class TwilioMessageError(ProtocolViolation):
    """Raised when a message on the Twilio stream is not valid Media Streams JSON; drop it, count it, go on."""


class TwilioCodec:
    """Validates Twilio's messages for one stream and encodes Parley's replies to it.

    :meth:`receive` raises :class:`TwilioMessageError` for anything malformed or out of order; the
    stream state is unchanged by a rejected message. Outbound encoders need :attr:`start` set.
    """

    def __init__(self, max_text_bytes: int = 16384) -> None:
        self.max_text_bytes = max_text_bytes
        self.start: Start | None = None
        self.last_sequence = 0

    def receive(self, data: str | bytes) -> TwilioEvent:
        if isinstance(data, bytes):
            raise TwilioMessageError("binary_frame", f"Media Streams messages are JSON text; got {len(data)} binary bytes")
        if len(data) > self.max_text_bytes:
            raise TwilioMessageError("message_too_large", f"message over {self.max_text_bytes} bytes")
        try:
            raw = json.loads(data)
        except json.JSONDecodeError as exc:
            raise TwilioMessageError("invalid_json", f"not valid JSON: {exc.msg} at {exc.pos}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("event"), str):
            raise TwilioMessageError("invalid_message", "a message must be a JSON object with a string 'event'")
        if raw["event"] not in EVENTS:
            raise TwilioMessageError("unknown_event", f"unknown event {raw['event'][:40]!r}")
        try:
            msg = _adapter.validate_python(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"][1:]) or raw["event"]
            raise TwilioMessageError("invalid_message", f"{raw['event']}: {where}: {first['msg']}") from None
        event = self._event(msg)
        if msg.sequenceNumber is not None:
            self.last_sequence = msg.sequenceNumber
        return event

    def _event(self, msg: _Inbound) -> TwilioEvent:
        if isinstance(msg, _ConnectedMsg):
            return Connected(msg.protocol, msg.version)
        if isinstance(msg, _StartMsg):
            return self._start(msg.start)
        if isinstance(msg, _StopMsg):
            self._check_stream(msg, started=False)
            return Stop(msg.stop.callSid, msg.stop.accountSid)
        self._check_stream(msg, started=True)
        if isinstance(msg, _DtmfMsg):
            return Dtmf(msg.dtmf.digit, msg.dtmf.track)
        if isinstance(msg, _MarkMsg):
            return Mark(msg.mark.name)
        return Media(_payload(msg.media.payload), msg.media.track, msg.media.chunk, msg.media.timestamp)

    def _start(self, body: _StartBody) -> Start:
        if self.start is not None:
            raise TwilioMessageError("already_started", f"stream {self.start.stream_sid} already started")
        fmt = body.mediaFormat
        if (fmt.encoding, fmt.sampleRate, fmt.channels) != (MULAW_ENCODING, RATE, 1):
            raise TwilioMessageError(
                "unsupported_media_format", f"expected {MULAW_ENCODING} at {RATE} Hz mono, got {fmt.encoding} at {fmt.sampleRate} Hz x{fmt.channels}"
            )
        self.start = Start(body.streamSid, body.callSid, body.accountSid, tuple(body.tracks), dict(body.customParameters))
        return self.start

    def _check_stream(self, msg: _Message, started: bool) -> None:
        if self.start is None:
            if started:
                raise TwilioMessageError("not_started", "message before the stream's start message")
            return
        if msg.streamSid is not None and msg.streamSid != self.start.stream_sid:
            raise TwilioMessageError("wrong_stream", f"streamSid {msg.streamSid[:40]!r} is not this stream's")

    # ---- Parley -> Twilio ------------------------------------------------------------------------

    def _sid(self) -> str:
        if self.start is None:
            raise RuntimeError("no stream yet: Twilio's start message has not been received")
        return self.start.stream_sid

    def media(self, ulaw: bytes) -> str:
        """A ``media`` message carrying mu-law 8 kHz audio for Twilio to play."""
        return _dumps({"event": "media", "streamSid": self._sid(), "media": {"payload": base64.b64encode(ulaw).decode("ascii")}})

    def mark(self, name: str) -> str:
        """A ``mark``: Twilio echoes it once everything sent before it has played (or was cleared)."""
        return _dumps({"event": "mark", "streamSid": self._sid(), "mark": {"name": name}})

    def clear(self) -> str:
        """A ``clear``: Twilio drops the audio it has buffered and echoes every outstanding mark."""
        return _dumps({"event": "clear", "streamSid": self._sid()})


def _payload(payload: str) -> np.ndarray:
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise TwilioMessageError("bad_payload", "media.payload is not valid base64") from None
    if not data:
        raise TwilioMessageError("bad_payload", "media.payload is empty")
    return ulaw_decode(data)


def _dumps(obj: dict[str, object]) -> str:
    return json.dumps(obj, separators=(",", ":"))


# ---- Parley -> Twilio: paced reply audio with marks -------------------------------------------

_MARK_NAME = re.compile(r"^(\d{1,9}):(\d{1,9}(?:\.\d{1,3})?)$")


def _ms_text(ms: float) -> str:
    return f"{ms:.3f}".rstrip("0").rstrip(".")


class TwilioOutput:
    """Agent audio -> 20 ms ``media`` messages with a ``mark`` named ``"<turn>:<ms>"`` every ``mark_ms``.

    Send what :meth:`audio` (each agent frame, int16 at 8 kHz), :meth:`done` (end of a reply: the
    last partial chunk padded with silence, and a final mark) and :meth:`clear` (barge-in) return,
    in order. Pass each echoed mark's name to :meth:`heard`; it returns ``(turn_id, played_ms)``
    to confirm to the session, or ``None`` (a foreign name, or a mark a ``clear`` flushed).
    """

    def __init__(self, codec: TwilioCodec, mark_ms: int = 100) -> None:
        self._codec = codec
        self.mark_ms = max(CHUNK_MS, mark_ms)
        self._pending = np.zeros(0, dtype=np.int16)
        self.turn_id = 0
        self.turn_ms = 0.0  # audio of this turn already in media messages
        self._marked_ms = 0.0
        self._cleared_turn = 0
        self.media_sent = 0
        self.marks_sent = 0

    def audio(self, samples: np.ndarray, turn_id: int) -> list[str]:
        if turn_id <= self._cleared_turn:
            return []  # audio of a reply already cut off
        out: list[str] = []
        if turn_id != self.turn_id:
            out += self.done(self.turn_id)
            self.turn_id, self.turn_ms, self._marked_ms = turn_id, 0.0, 0.0
        buf = np.concatenate([self._pending, np.asarray(samples, dtype=np.int16)])
        whole = len(buf) // CHUNK_SAMPLES * CHUNK_SAMPLES
        for i in range(0, whole, CHUNK_SAMPLES):
            out.append(self._media(buf[i : i + CHUNK_SAMPLES]))
            if self.turn_ms - self._marked_ms >= self.mark_ms:
                out.append(self._mark())
        self._pending = buf[whole:]
        return out

    def done(self, turn_id: int) -> list[str]:
        if turn_id != self.turn_id or turn_id <= self._cleared_turn:
            return []
        out: list[str] = []
        if len(self._pending):
            tail = np.zeros(CHUNK_SAMPLES, dtype=np.int16)
            tail[: len(self._pending)] = self._pending
            out.append(self._media(tail, real=len(self._pending)))
            self._pending = np.zeros(0, dtype=np.int16)
        if self.turn_ms > self._marked_ms:
            out.append(self._mark())
        return out

    def clear(self, turn_id: int) -> str:
        self._pending = np.zeros(0, dtype=np.int16)
        self._cleared_turn = max(self._cleared_turn, turn_id)
        return self._codec.clear()

    def heard(self, name: str) -> tuple[int, float] | None:
        m = _MARK_NAME.match(name)
        if m is None:
            return None
        turn_id = int(m.group(1))
        if turn_id <= self._cleared_turn:
            return None  # Twilio echoes the marks a clear dropped at once: that audio was not heard
        return turn_id, float(m.group(2))

    def _media(self, chunk: np.ndarray, real: int = CHUNK_SAMPLES) -> str:
        self.turn_ms += real * 1000 / RATE
        self.media_sent += 1
        return self._codec.media(ulaw_encode(chunk))

    def _mark(self) -> str:
        self._marked_ms = self.turn_ms
        self.marks_sent += 1
        return self._codec.mark(f"{self.turn_id}:{_ms_text(self.turn_ms)}")
