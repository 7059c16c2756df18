"""The Twilio codecs byte by byte: G.711 mu-law, every Media Streams message, bad input, and (from
pipelines/codecs/twiml.py) TwiML and signatures; the framing is cross-checked against pipecat's
independent Twilio serializer."""

from __future__ import annotations

import base64
import importlib
import json
import xml.etree.ElementTree as ET
from typing import Any, cast

import numpy as np
import pytest

from pipelines.codecs import twilio as tw
from pipelines.codecs import twiml

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
START: dict[str, Any] = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": "AC123",
        "streamSid": SID,
        "callSid": "CA123",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"language": "en", "persona": "default"},
    },
    "streamSid": SID,
}


def started() -> tw.TwilioCodec:
    codec = tw.TwilioCodec()
    codec.receive(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    codec.receive(json.dumps(START))
    return codec


def media_msg(payload: object, **media: Any) -> str:
    body = {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": payload, **media}
    return json.dumps({"event": "media", "sequenceNumber": "3", "media": body, "streamSid": SID})


def audioop_or_skip() -> Any:
    try:
        return importlib.import_module("audioop")  # the C reference, in the standard library up to 3.12
    except ImportError:
        pytest.skip("audioop is not in this Python")


# ---- G.711 mu-law --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "code"),
    [
        (0, 0xFF),
        (1, 0xFF),
        (-1, 0x7E),
        (32767, 0x80),
        (32635, 0x80),
        (-32768, 0x00),
        (-32767, 0x00),
        (100, 0xF2),
        (-100, 0x72),
        (1000, 0xCE),
    ],
)
def test_mulaw_encode_vectors(sample: int, code: int) -> None:
    assert tw.ulaw_encode(np.array([sample], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize(
    ("code", "sample"), [(0xFF, 0), (0x7F, 0), (0x80, 32124), (0x00, -32124), (0xF0, 120), (0x70, -120), (0xEF, 132), (0xCE, 988)]
)
def test_mulaw_decode_vectors(code: int, sample: int) -> None:
    assert tw.ulaw_decode(bytes([code])).tolist() == [sample]


def test_mulaw_matches_the_c_reference_for_every_value() -> None:
    audioop = audioop_or_skip()
    every = np.arange(-32768, 32768, dtype=np.int16)
    assert tw.ulaw_encode(every) == audioop.lin2ulaw(every.tobytes(), 2)
    codes = bytes(range(256))
    assert tw.ulaw_decode(codes).tobytes() == audioop.ulaw2lin(codes, 2)


def test_mulaw_round_trip_error_is_within_half_a_step() -> None:
    x = np.arange(-32635, 32636)  # beyond +-32635 G.711 saturates
    err = np.abs(tw.ulaw_decode(tw.ulaw_encode(x.astype(np.int16))).astype(np.int64) - x)
    # G.711 quantises the biased 14-bit magnitude; in segment s the step is 8 << s (16-bit scale),
    # so the error is at most half a step plus the 2 low bits dropped on the way to 14 bits
    mag = np.abs(x >> 2) + 33
    seg = np.array([next((s for s in range(8) if m <= (64 << s) - 1), 7) for m in mag])
    assert np.all(err <= (4 << seg) + 3)
    assert err.max() == 515
    codes = bytes(range(256))
    again = tw.ulaw_encode(tw.ulaw_decode(codes))
    assert [a for a, b in zip(again, codes, strict=True) if a != b] == [0xFF]  # only "negative zero" 0x7F moves


def test_mulaw_sine_snr_and_monotonic_decode() -> None:
    t = np.arange(8000) / 8000
    x = (16000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    y = tw.ulaw_decode(tw.ulaw_encode(x)).astype(np.float64)
    snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((x - y) ** 2))
    assert snr > 35  # G.711 gives ~38 dB over most of its range
    positive = tw.ulaw_decode(bytes(range(0xFF, 0x7F, -1)))
    assert np.all(np.diff(positive.astype(np.int64)) > 0)


# ---- Twilio -> Parley -----------------------------------------------------------------------------


def test_connected_and_start() -> None:
    codec = tw.TwilioCodec()
    connected = codec.receive('{"event": "connected", "protocol": "Call", "version": "1.0.0"}')
    assert connected == tw.Connected("Call", "1.0.0")
    start = codec.receive(json.dumps(START))
    assert isinstance(start, tw.Start)
    assert (start.stream_sid, start.call_sid, start.account_sid, start.tracks) == (SID, "CA123", "AC123", ("inbound",))
    assert start.custom_parameters == {"language": "en", "persona": "default"}
    assert codec.start == start and codec.last_sequence == 1


def test_media_decodes_payload_and_spec_string_numbers() -> None:
    codec = started()
    payload = base64.b64encode(bytes([0xFF, 0x80, 0x00, 0xF0])).decode()
    event = codec.receive(media_msg(payload, chunk="12", timestamp="220"))
    assert isinstance(event, tw.Media)
    assert event.samples.dtype == np.int16 and event.samples.tolist() == [0, 32124, -32124, 120]
    assert (event.track, event.chunk, event.timestamp_ms) == ("inbound", 12, 220)
    assert codec.last_sequence == 3


def test_dtmf_mark_stop() -> None:
    codec = started()
    dtmf = {"event": "dtmf", "streamSid": SID, "sequenceNumber": "5", "dtmf": {"track": "inbound_track", "digit": "#"}}
    assert codec.receive(json.dumps(dtmf)) == tw.Dtmf("#", "inbound_track")
    mark = {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "1:100"}}
    assert codec.receive(json.dumps(mark)) == tw.Mark("1:100")
    stop = {"event": "stop", "sequenceNumber": "6", "streamSid": SID, "stop": {"accountSid": "AC123", "callSid": "CA123"}}
    assert codec.receive(json.dumps(stop)) == tw.Stop("CA123", "AC123")


def test_stop_before_start_ends_the_stream() -> None:
    assert isinstance(tw.TwilioCodec().receive('{"event": "stop", "stop": {}}'), tw.Stop)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ('{"event": "media", "media": {"pay', "invalid_json"),
        ("", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"event": 7}', "invalid_message"),
        ('{"event": "dance"}', "unknown_event"),
        (b"\x00\x01", "binary_frame"),
        (media_msg("AAAA"), "not_started"),
        ('{"event": "mark", "mark": {"name": "1:100"}}', "not_started"),
        (
            json.dumps({**START, "start": {**START["start"], "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 16000}}}),
            "unsupported_media_format",
        ),
        (json.dumps({**START, "start": {**START["start"], "customParameters": ["x"]}}), "invalid_message"),
        (json.dumps({**START, "start": {k: v for k, v in START["start"].items() if k != "streamSid"}}), "invalid_message"),
    ],
)
def test_garbage_before_start_is_a_typed_error(data: str | bytes, code: str) -> None:
    codec = tw.TwilioCodec()
    with pytest.raises(tw.TwilioMessageError) as info:
        codec.receive(data)
    assert info.value.code == code and info.value.reason and info.value.close_code is None
    assert codec.start is None


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (media_msg("***not base64***"), "bad_payload"),
        (media_msg("AAA"), "bad_payload"),  # bad padding
        (media_msg(""), "bad_payload"),
        (media_msg(12345), "invalid_message"),
        (media_msg("AAAA", chunk="twelve"), "invalid_message"),
        (media_msg("AAAA", timestamp=[1]), "invalid_message"),
        (json.dumps({"event": "media", "streamSid": SID}), "invalid_message"),
        ('{"event": "media", "sequenceNumber": "x", "media": {"payload": "AAAA"}}', "invalid_message"),
        (media_msg("AAAA").replace(SID, "MZother"), "wrong_stream"),
        ('{"event": "dtmf", "dtmf": {"digit": "x"}}', "invalid_message"),
        ('{"event": "dtmf", "dtmf": {"digit": "12"}}', "invalid_message"),
        ('{"event": "mark", "mark": {}}', "invalid_message"),
        (json.dumps(START), "already_started"),
        ("{" + " " * 20000 + "}", "message_too_large"),
        (json.dumps({"event": "clear", "streamSid": SID}), "unknown_event"),  # ours to send, never Twilio's
    ],
)
def test_garbage_mid_stream_is_a_typed_error_and_changes_nothing(data: str, code: str) -> None:
    codec = started()
    before = (codec.start, codec.last_sequence)
    with pytest.raises(tw.TwilioMessageError) as info:
        codec.receive(data)
    assert info.value.code == code, info.value.reason
    assert (codec.start, codec.last_sequence) == before
    assert isinstance(codec.receive(media_msg("AAAA")), tw.Media)  # the stream goes on


# ---- Parley -> Twilio ----------------------------------------------------------------------------


def test_outbound_messages_byte_by_byte() -> None:
    codec = started()
    assert codec.media(b"\xff\x80\x00") == '{"event":"media","streamSid":"' + SID + '","media":{"payload":"/4AA"}}'
    assert codec.mark("1:100") == '{"event":"mark","streamSid":"' + SID + '","mark":{"name":"1:100"}}'
    assert codec.clear() == '{"event":"clear","streamSid":"' + SID + '"}'
    with pytest.raises(RuntimeError):
        tw.TwilioCodec().clear()


def test_output_cuts_20ms_chunks_and_marks_every_100ms() -> None:
    out = tw.TwilioOutput(started(), mark_ms=100)
    tone = (8000 * np.sin(np.arange(8000) / 5)).astype(np.int16)
    sent = [json.loads(m) for i in range(0, 8000, 320) for m in out.audio(tone[i : i + 320], 1)]  # 40 ms frames
    media = [m for m in sent if m["event"] == "media"]
    assert len(media) == 50
    payloads = [base64.b64decode(m["media"]["payload"]) for m in media]
    assert {len(p) for p in payloads} == {160}
    assert b"".join(payloads) == tw.ulaw_encode(tone)
    marks = [m["mark"]["name"] for m in sent if m["event"] == "mark"]
    assert marks == [f"1:{ms}" for ms in range(100, 1001, 100)]
    assert [m["event"] for m in sent[:6]] == ["media"] * 5 + ["mark"]
    # a 9.375 ms tail is held until the reply ends, then padded with silence and marked exactly
    assert out.audio(tone[:75], 1) == []
    tail = [json.loads(m) for m in out.done(1)]
    assert [m["event"] for m in tail] == ["media", "mark"]
    padded = base64.b64decode(tail[0]["media"]["payload"])
    assert padded == tw.ulaw_encode(tone[:75]) + b"\xff" * 85
    assert tail[1]["mark"]["name"] == "1:1009.375"
    assert out.heard("1:1009.375") == (1, 1009.375)
    assert out.done(1) == []


def test_output_new_turn_restarts_positions_and_clear_drops_the_rest() -> None:
    out = tw.TwilioOutput(started(), mark_ms=100)
    frame = np.full(100, 1000, dtype=np.int16)
    out.audio(frame, 1)  # 100 samples pending from turn 1
    sent = [json.loads(m) for m in out.audio(np.full(800, 1000, dtype=np.int16), 2)]
    # turn 1's tail is flushed (padded, marked) before turn 2 starts at 0 ms
    assert [m["event"] for m in sent[:2]] == ["media", "mark"] and sent[1]["mark"]["name"] == "1:12.5"
    assert [m["mark"]["name"] for m in sent[2:] if m["event"] == "mark"] == ["2:100"]
    assert json.loads(out.clear(2)) == {"event": "clear", "streamSid": SID}
    assert out.audio(frame, 2) == [] and out.done(2) == []
    # Twilio echoes the marks a clear dropped at once: those must not count as heard
    assert out.heard("2:100") is None and out.heard("1:12.5") is None
    assert out.heard("session:abc") is None and out.heard("3:x") is None and out.heard("3:40") == (3, 40.0)


# ---- TwiML and signatures ------------------------------------------------------------------------


def test_connect_stream_twiml() -> None:
    xml = twiml.connect_stream_twiml("wss://voice.example.com/ws/twilio", {"persona": "sales & <support>", "language": "en"})
    assert xml.startswith(
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://voice.example.com/ws/twilio">'
    )
    root = ET.fromstring(xml)
    stream = root.find("./Connect/Stream")
    assert root.tag == "Response" and stream is not None
    assert [(p.get("name"), p.get("value")) for p in stream.findall("Parameter")] == [
        ("persona", "sales & <support>"),
        ("language", "en"),
    ]


def test_signature_matches_twilios_documented_example() -> None:
    # the worked example of Twilio's "Validating requests" guide
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    assert twiml.twilio_signature("12345", url, params.items()) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twiml.signature_valid("12345", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", [url], params.items())
    assert not twiml.signature_valid("12345", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", [url], {**params, "Digits": "1235"}.items())
    assert not twiml.signature_valid("wrong", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", [url], params.items())
    assert not twiml.signature_valid("12345", "", [url], params.items())


def test_signature_with_or_without_the_default_port() -> None:
    signed = twiml.twilio_signature("tok", "https://voice.example.com:443/twilio/voice")
    assert twiml.signature_valid("tok", signed, ["https://voice.example.com/twilio/voice"])
    signed = twiml.twilio_signature("tok", "wss://voice.example.com/ws/twilio")
    assert twiml.signature_valid("tok", signed, ["wss://voice.example.com:443/ws/twilio"])
    assert not twiml.signature_valid("tok", signed, ["wss://voice.example.com:8443/ws/twilio"])


# ---- cross-check with pipecat's Twilio serializer ------------------------------------------------


async def pipecat_serializer() -> Any:
    from pipecat.processors.frame_processor import FrameProcessorSetup
    from pipecat.serializers.twilio import TwilioFrameSerializer

    ser = TwilioFrameSerializer(SID, params=TwilioFrameSerializer.InputParams(auto_hang_up=False, sample_rate=8000))
    none = cast(Any, None)
    await ser.setup(FrameProcessorSetup(clock=none, task_manager=none, pipeline_worker=none, audio_in_sample_rate=8000))
    return ser


def speech() -> np.ndarray:
    from bench.caller import librivox_clips, load_pcm

    return load_pcm(librivox_clips()[1][0], 8000)[8000:8800]  # 100 ms of real speech


async def test_pipecat_decodes_what_we_send() -> None:
    from pipecat.frames.frames import InputAudioRawFrame

    ser = await pipecat_serializer()
    pcm = speech()
    sent = [m for m in tw.TwilioOutput(started()).audio(pcm, 1) if json.loads(m)["event"] == "media"]
    assert len(sent) == 5
    frames = [await ser.deserialize(m) for m in sent]
    assert all(isinstance(f, InputAudioRawFrame) and f.sample_rate == 8000 and f.num_channels == 1 for f in frames)
    heard = np.frombuffer(b"".join(f.audio for f in frames), dtype="<i2")
    assert np.array_equal(heard, tw.ulaw_decode(tw.ulaw_encode(pcm)))
    assert np.max(np.abs(heard.astype(np.int64) - pcm)) <= 515


async def test_we_accept_what_pipecat_encodes_and_agree_on_clear() -> None:
    from pipecat.frames.frames import InterruptionFrame, OutputAudioRawFrame

    ser = await pipecat_serializer()
    pcm = speech()
    wire = await ser.serialize(OutputAudioRawFrame(audio=pcm.tobytes(), sample_rate=8000, num_channels=1))
    assert isinstance(wire, str)
    msg = json.loads(wire)
    assert base64.b64decode(msg["media"]["payload"]) == tw.ulaw_encode(pcm)  # same encoder output
    event = started().receive(wire)
    assert isinstance(event, tw.Media) and np.array_equal(event.samples, tw.ulaw_decode(tw.ulaw_encode(pcm)))
    clear = await ser.serialize(InterruptionFrame())
    assert isinstance(clear, str) and json.loads(clear) == json.loads(started().clear())


async def test_we_and_pipecat_read_twilios_messages_alike() -> None:
    from pipecat.frames.frames import InputAudioRawFrame, InputDTMFFrame

    ser = await pipecat_serializer()
    pcm = speech()[:160]
    twilio_media = media_msg(base64.b64encode(tw.ulaw_encode(pcm)).decode())
    theirs = await ser.deserialize(twilio_media)
    ours = started().receive(twilio_media)
    assert isinstance(theirs, InputAudioRawFrame) and isinstance(ours, tw.Media)
    assert theirs.audio == ours.samples.astype("<i2").tobytes()
    for digit in "0123456789*#":
        dtmf = json.dumps(
            {"event": "dtmf", "streamSid": SID, "sequenceNumber": "5", "dtmf": {"track": "inbound_track", "digit": digit}}
        )
        them = await ser.deserialize(dtmf)
        assert isinstance(them, InputDTMFFrame)
        assert started().receive(dtmf) == tw.Dtmf(them.button.value, "inbound_track")
