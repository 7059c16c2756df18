"""Typed events that flow between the stages of a call and out to its transport."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SessionCreated:
    session_id: str
    output_sample_rate: int
    input_sample_rate: int


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    t_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    t_ms: int


@dataclass(frozen=True, slots=True)
class TranscriptPartial:
    text: str
    t_ms: int


@dataclass(frozen=True, slots=True)
class TranscriptFinal:
    text: str
    t_ms: int
    language: str


@dataclass(frozen=True, slots=True)
class AgentText:
    text: str
    turn_id: int


@dataclass(frozen=True, slots=True)
class AgentTextDone:
    text: str
    turn_id: int


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """PCM16 mono at the session's output rate."""

    pcm: bytes
    turn_id: int


@dataclass(frozen=True, slots=True)
class AgentAudioDone:
    turn_id: int
    duration_ms: int


@dataclass(frozen=True, slots=True)
class AgentInterrupted:
    turn_id: int
    played_ms: int
    heard_text: str


@dataclass(frozen=True, slots=True)
class TurnMetrics:
    turn_id: int
    values: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EmotionEvent:
    """An ``emotion``, ``emotion.utterance`` or ``emotion.alert`` message, already in wire form."""

    payload: dict[str, object]


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """An ``agent.slots``, ``agent.tool_call``, ``agent.tool_result`` or ``agent.transfer`` message, in wire form."""

    payload: dict[str, object]


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class SessionEnded:
    reason: str


OutboundEvent = (
    SessionCreated
    | SpeechStarted
    | SpeechStopped
    | TranscriptPartial
    | TranscriptFinal
    | AgentText
    | AgentTextDone
    | AgentAudio
    | AgentAudioDone
    | AgentInterrupted
    | TurnMetrics
    | EmotionEvent
    | AgentEvent
    | ErrorEvent
    | SessionEnded
)

# Control events jump the queue and are never flushed; data (agent audio) may be flushed on barge-in.
# SessionEnded stays in the ordered lane: it must be the last thing a client receives.
CONTROL_TYPES: tuple[type, ...] = (AgentInterrupted, ErrorEvent)
