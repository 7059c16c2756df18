"""Sans-I/O codec for the ``/ws/call`` protocol: client frames in -> typed commands out, events -> frames.

The codec never touches a socket. Feed it what arrived with :meth:`CallCodec.receive_text` /
:meth:`CallCodec.receive_bytes`; send what :meth:`CallCodec.encode` returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from pipelines import events as ev
from pipelines.errors import ProtocolViolation

SAMPLE_RATES = (8000, 16000, 24000, 48000)
CLOSE_TOO_BIG = 1009
CLOSE_POLICY = 1008


class AudioFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["pcm16"] = "pcm16"
    sample_rate: int = 16000


class SessionStart(BaseModel):
    """``session.start``: declares the caller's audio and the call's language, voice and persona."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["session.start"]
    audio: AudioFormat = AudioFormat()
    language: str = Field(default="en", min_length=2, max_length=8)
    voice: str | None = None
    persona: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class SessionEnd(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["session.end"]


ClientMessage = Annotated[SessionStart | SessionEnd, Field(discriminator="type")]
_client_adapter: TypeAdapter[SessionStart | SessionEnd] = TypeAdapter(ClientMessage)


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """Caller audio as int16 samples at the declared rate."""

    samples: np.ndarray


class CallCodec:
    """Validates client frames for one connection and encodes server events.

    Raises :class:`ProtocolViolation`; when its ``close_code`` is set the transport must close
    with it, otherwise it sends the error event and keeps the session going.
    """

    def __init__(self, max_frame_bytes: int = 65536, max_text_bytes: int = 16384) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.max_text_bytes = max_text_bytes
        self.start: SessionStart | None = None

    def receive_text(self, data: str) -> SessionStart | SessionEnd:
        if len(data.encode("utf-8")) > self.max_text_bytes:
            raise ProtocolViolation("message_too_large", f"text message over {self.max_text_bytes} bytes", CLOSE_TOO_BIG)
        try:
            raw = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ProtocolViolation("invalid_json", f"message is not valid JSON: {exc.msg} at {exc.pos}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise ProtocolViolation("invalid_message", "a message must be a JSON object with a string 'type'")
        if raw["type"] not in ("session.start", "session.end"):
            raise ProtocolViolation("unknown_type", f"unknown message type {raw['type']!r}")
        try:
            msg = _client_adapter.validate_python(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"][1:]) or raw["type"]
            raise ProtocolViolation("invalid_message", f"{raw['type']}: {where}: {first['msg']}") from None
        if isinstance(msg, SessionStart):
            if self.start is not None:
                raise ProtocolViolation("already_started", "session.start was already received")
            if msg.audio.sample_rate not in SAMPLE_RATES:
                raise ProtocolViolation(
                    "unsupported_sample_rate",
                    f"sample_rate {msg.audio.sample_rate} not supported; use one of {list(SAMPLE_RATES)}",
                )
            self.start = msg
        return msg

    def receive_bytes(self, data: bytes) -> AudioFrame:
        if len(data) > self.max_frame_bytes:
            raise ProtocolViolation("frame_too_large", f"audio frame over {self.max_frame_bytes} bytes", CLOSE_TOO_BIG)
        if self.start is None:
            raise ProtocolViolation("not_started", "binary audio before session.start; send session.start first")
        if len(data) % 2:
            raise ProtocolViolation("odd_frame_length", f"PCM16 frames need an even byte count, got {len(data)}; frame dropped")
        return AudioFrame(np.frombuffer(data, dtype="<i2"))

    @staticmethod
    def encode(event: ev.OutboundEvent) -> str | bytes:
        """The wire form of one server event: bytes for agent audio, JSON text for the rest."""
        if isinstance(event, ev.AgentAudio):
            return event.pcm
        return json.dumps(event_to_json(event), ensure_ascii=False, separators=(",", ":"))


def event_to_json(event: ev.OutboundEvent) -> dict[str, object]:
    """JSON object for a server event (shared by every transport that carries JSON events)."""
    match event:
        case ev.SessionCreated():
            return {
                "type": "session.created",
                "session_id": event.session_id,
                "input_audio": {"format": "pcm16", "sample_rate": event.input_sample_rate},
                "output_audio": {"format": "pcm16", "sample_rate": event.output_sample_rate},
            }
        case ev.SpeechStarted():
            return {"type": "speech.started", "t_ms": event.t_ms}
        case ev.SpeechStopped():
            return {"type": "speech.stopped", "t_ms": event.t_ms}
        case ev.TranscriptPartial():
            return {"type": "transcript.partial", "text": event.text, "t_ms": event.t_ms}
        case ev.TranscriptFinal():
            return {"type": "transcript.final", "text": event.text, "t_ms": event.t_ms, "language": event.language}
        case ev.AgentText():
            return {"type": "agent.text", "text": event.text, "turn_id": event.turn_id}
        case ev.AgentTextDone():
            return {"type": "agent.text.done", "text": event.text, "turn_id": event.turn_id}
        case ev.AgentAudioDone():
            return {"type": "agent.audio.done", "turn_id": event.turn_id, "duration_ms": event.duration_ms}
        case ev.AgentInterrupted():
            return {
                "type": "agent.interrupted",
                "turn_id": event.turn_id,
                "played_ms": event.played_ms,
                "heard_text": event.heard_text,
            }
        case ev.TurnMetrics():
            return {"type": "turn.metrics", "turn_id": event.turn_id, **event.values}
        case ev.EmotionEvent() | ev.AgentEvent():
            return dict(event.payload)
        case ev.ErrorEvent():
            return {"type": "error", "code": event.code, "message": event.message}
        case ev.SessionEnded():
            return {"type": "session.ended", "reason": event.reason}
        case ev.AgentAudio():
            return {"type": "agent.audio", "bytes": len(event.pcm), "turn_id": event.turn_id}
    raise TypeError(f"not a server event: {event!r}")
