"""The /ws/call codec, byte by byte, bad input included."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines import events as ev
from pipelines.codecs.wscall import CallCodec, SessionEnd, SessionStart
from pipelines.errors import ProtocolViolation

START = json.dumps({"type": "session.start", "audio": {"format": "pcm16", "sample_rate": 16000}, "language": "en"})


def started() -> CallCodec:
    c = CallCodec()
    c.receive_text(START)
    return c


def test_session_start_defaults_and_fields() -> None:
    c = CallCodec()
    msg = c.receive_text(json.dumps({"type": "session.start", "voice": "v1", "persona": "p"}))
    assert isinstance(msg, SessionStart)
    assert msg.audio.sample_rate == 16000 and msg.language == "en" and msg.voice == "v1" and msg.persona == "p"


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 48000])
def test_supported_rates(rate: int) -> None:
    msg = CallCodec().receive_text(json.dumps({"type": "session.start", "audio": {"sample_rate": rate}}))
    assert isinstance(msg, SessionStart) and msg.audio.sample_rate == rate


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", "invalid_json"),
        ("[]", "invalid_message"),
        ('{"type": 5}', "invalid_message"),
        ('{"type": "hello"}', "unknown_type"),
        ('{"type": "session.start", "audio": {"sample_rate": 44100}}', "unsupported_sample_rate"),
        ('{"type": "session.start", "audio": {"format": "mulaw"}}', "invalid_message"),
        ('{"type": "session.start", "audio": {"sample_rate": "fast"}}', "invalid_message"),
        ('{"type": "session.start", "language": ""}', "invalid_message"),
    ],
)
def test_bad_text_is_a_recoverable_error(text: str, code: str) -> None:
    c = CallCodec()
    with pytest.raises(ProtocolViolation) as info:
        c.receive_text(text)
    assert info.value.code == code and info.value.close_code is None and info.value.reason
    assert c.start is None
    c.receive_text(START)  # the connection is still usable
    assert c.start is not None


def test_second_start_is_rejected() -> None:
    c = started()
    with pytest.raises(ProtocolViolation) as info:
        c.receive_text(START)
    assert info.value.code == "already_started"


def test_session_end() -> None:
    assert isinstance(started().receive_text('{"type": "session.end"}'), SessionEnd)


def test_audio_before_start() -> None:
    with pytest.raises(ProtocolViolation) as info:
        CallCodec().receive_bytes(b"\x00\x00")
    assert info.value.code == "not_started" and info.value.close_code is None


def test_audio_is_little_endian_pcm16() -> None:
    frame = started().receive_bytes(b"\x01\x00\xff\x7f\x00\x80")
    assert frame.samples.tolist() == [1, 32767, -32768]


def test_odd_length_frame() -> None:
    with pytest.raises(ProtocolViolation) as info:
        started().receive_bytes(b"\x00\x00\x00")
    assert info.value.code == "odd_frame_length" and info.value.close_code is None


def test_frame_limits() -> None:
    c = started()
    assert len(c.receive_bytes(b"\x00" * 65536).samples) == 32768
    with pytest.raises(ProtocolViolation) as info:
        c.receive_bytes(b"\x00" * 65538)
    assert info.value.close_code == 1009


def test_oversized_text_closes_1009() -> None:
    with pytest.raises(ProtocolViolation) as info:
        CallCodec(max_text_bytes=100).receive_text(json.dumps({"type": "session.start", "pad": "x" * 200}))
    assert info.value.close_code == 1009


def test_encode_events() -> None:
    assert CallCodec.encode(ev.AgentAudio(b"\x01\x02", 3)) == b"\x01\x02"
    cases: list[tuple[ev.OutboundEvent, dict[str, object]]] = [
        (
            ev.SessionCreated("abc", 24000, 16000),
            {"type": "session.created", "session_id": "abc", "output_audio": {"format": "pcm16", "sample_rate": 24000}},
        ),
        (ev.SpeechStarted(120), {"type": "speech.started", "t_ms": 120}),
        (ev.SpeechStopped(900), {"type": "speech.stopped", "t_ms": 900}),
        (ev.TranscriptPartial("hel", 500), {"type": "transcript.partial", "text": "hel"}),
        (ev.TranscriptFinal("hello", 900, "en"), {"type": "transcript.final", "text": "hello"}),
        (ev.AgentText("Hi.", 2), {"type": "agent.text", "text": "Hi.", "turn_id": 2}),
        (ev.AgentTextDone("Hi.", 2), {"type": "agent.text.done"}),
        (ev.AgentAudioDone(2, 800), {"type": "agent.audio.done", "turn_id": 2}),
        (ev.AgentInterrupted(2, 400, "Hi"), {"type": "agent.interrupted", "played_ms": 400}),
        (ev.TurnMetrics(2, {"voice_to_voice_ms": 512.0}), {"type": "turn.metrics", "voice_to_voice_ms": 512.0}),
        (ev.ErrorEvent("x", "y"), {"type": "error", "code": "x", "message": "y"}),
        (ev.SessionEnded("hangup"), {"type": "session.ended", "reason": "hangup"}),
    ]
    for event, expected in cases:
        out = CallCodec.encode(event)
        assert isinstance(out, str)
        decoded = json.loads(out)
        for key, value in expected.items():
            assert decoded[key] == value, (event, decoded)


def test_unicode_text_round_trips() -> None:
    out = CallCodec.encode(ev.TranscriptFinal("我的订单在哪里", 0, "zh"))
    assert isinstance(out, str) and "我的订单在哪里" in out
    assert np.frombuffer(b"", dtype="<i2").size == 0
