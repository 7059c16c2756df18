"""The phone bridge: /ws/twilio in process with scripted models (exact marks, clear, DTMF, garbage),
/twilio/voice TwiML and signatures, and a whole phone call against the real server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any, cast

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from agent.personas import Persona
from bench.caller import librivox_clips, load_pcm
from bench.metrics import normalise
from bench.twilio_caller import TwilioCaller
from pipelines import events as ev
from pipelines.codecs import twilio as tw
from pipelines.codecs.wscall import SessionStart
from pipelines.playout import Outbox, Playout
from pipelines.runner import CallSession
from pipelines.transports.twilio import TwilioConnection, twilio_routes
from settings import Settings
from tests.conftest import ServerProcess, wait_call
from tests.test_runner import EchoPolicy, Hub, ScriptedASR

GREETING = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima."  # one clause, 12 words
SID = "MZ00000000000000000000000000000001"


class ToneTTS:
    """Three seconds of a 440 Hz tone for any text, at 8 kHz (so no resampling blurs the byte check)."""

    sample_rate = 8000
    tone = (6000 * np.sin(2 * np.pi * 440 * np.arange(24000) / 8000)).astype(np.int16)

    def synthesize(self, text: str) -> np.ndarray:
        return self.tone.copy()


class AppSettings:
    """Parley's settings plus the Twilio ones the server's Settings may not have yet."""

    def __init__(self, base: Settings, **extra: Any) -> None:
        self._base = base
        self.__dict__.update(extra)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


class FakeParley:
    """What the transport needs of ``server.Parley``: scripted models, every event recorded."""

    def __init__(self, **extra: Any) -> None:
        self.base = Settings.from_env({}, smart_turn=False, turn_max_silence_ms=400)
        self.settings = AppSettings(self.base, **extra)
        self.hub = Hub(ScriptedASR([""]), ToneTTS())  # type: ignore[arg-type]
        self.sessions: list[CallSession] = []
        self.starts: list[SessionStart] = []
        self.released: list[CallSession] = []
        self.events: list[ev.OutboundEvent] = []
        self.connections: list[TwilioConnection] = []

    async def new_session(self, start: SessionStart, transport: str) -> CallSession:
        persona = Persona("default", "Joe", GREETING, ("Sorry?",))
        session = CallSession(
            self.hub,  # type: ignore[arg-type]
            self.base,
            input_rate=start.audio.sample_rate,
            language=start.language,
            persona=persona,
            policy=EchoPolicy(),
            transport=transport,
        )
        self.starts.append(start)
        self.sessions.append(session)
        return session

    def release_session(self, session: CallSession) -> None:
        self.released.append(session)

    def monitor(self, session: CallSession, event: ev.OutboundEvent) -> None:
        self.events.append(event)

    def app(self) -> Starlette:
        async def stream(ws: WebSocket) -> None:
            conn = TwilioConnection(cast(Any, self), ws)
            self.connections.append(conn)
            await conn.serve()

        return Starlette(routes=[WebSocketRoute("/ws/twilio", stream), *twilio_routes(cast(Any, self))])


def twilio_msg(event: str, seq: int, **body: Any) -> str:
    return json.dumps({"event": event, "sequenceNumber": str(seq), **body, "streamSid": SID})


def start_msg(**params: str) -> str:
    fmt = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    start = {
        "streamSid": SID,
        "accountSid": "AC1",
        "callSid": "CA1",
        "tracks": ["inbound"],
        "customParameters": params,
        "mediaFormat": fmt,
    }
    return twilio_msg("start", 1, start=start)


def media_msg(seq: int, pcm: np.ndarray) -> str:
    body = {
        "track": "inbound",
        "chunk": str(seq),
        "timestamp": str(seq * 20),
        "payload": base64.b64encode(tw.ulaw_encode(pcm)).decode(),
    }
    return twilio_msg("media", seq, media=body)


def garbage(sid: str) -> list[tuple[str | bytes, str]]:
    """Malformed messages mid-call, each with the error code it must be dropped with."""
    return [
        (json.dumps({"event": "media", "streamSid": sid, "media": {"payload": "%%%%"}}), "bad_payload"),
        (json.dumps({"event": "dance", "streamSid": sid}), "unknown_event"),
        ('{"event": "media", "media": {"track": "inbound", "pay', "invalid_json"),
        (json.dumps({"event": "media", "streamSid": sid, "media": {"chunk": "first", "payload": "AAAA"}}), "invalid_message"),
        (json.dumps({"event": "media", "streamSid": "MZ-someone-else", "media": {"payload": "AAAA"}}), "wrong_stream"),
        (b"\x00\x01\x02", "binary_frame"),
    ]


def sign(token: str, url: str, params: dict[str, str] | None = None) -> str:
    data = url + "".join(k + v for k, v in sorted((params or {}).items()))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


# ---- confirmed playback -----------------------------------------------------------------------------


async def test_playout_trusts_confirmations_over_the_clock() -> None:
    play = Playout(Outbox(max_items=10_000), 1, 8000, frame_ms=40, lead_ms=10_000)
    await play.play("one two three four.", np.zeros(8000, dtype=np.int16))  # 1 s, sent at once
    await play.play("five six.", np.zeros(803, dtype=np.int16))  # 100.375 ms
    await asyncio.sleep(0.05)
    assert 40 <= play.played_ms() < 1000  # no confirmation yet: the wall-clock estimate
    play.confirm(500)
    assert play.played_ms() == 500 and play.heard_text(play.played_ms()) == "one two"
    play.confirm(300)  # a late, older echo never moves it back
    assert play.played_ms() == 500
    play.confirm(1100.375)  # everything: the tail's fraction of a millisecond still counts as heard
    assert play.played_ms() == 1101 and play.heard_text(play.played_ms()) == "one two three four. five six."
    play.confirm(5000)
    assert play.played_ms() == 1101  # never more than was sent


# ---- /ws/twilio in process ----------------------------------------------------------------------


def test_stream_marks_confirm_what_was_heard_and_clear_cuts_the_greeting() -> None:
    fake = FakeParley(twilio_mark_ms=100)
    speech = load_pcm(librivox_clips()[1][0], 8000)[:12000]  # 1.5 s: "he was not an ill..."
    received: list[dict[str, Any]] = []
    try:
        with TestClient(fake.app()) as client, client.websocket_connect("/ws/twilio") as ws:
            ws.send_text(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            ws.send_text("{")  # garbage before start is dropped too
            ws.send_text(media_msg(1, np.zeros(160, dtype=np.int16)))  # media before start
            ws.send_text(start_msg(language="en-US", persona="default", voice="default"))
            # the greeting streams; the phone confirms it played the first 500 ms, then (slow network) nothing more
            while True:
                msg = json.loads(ws.receive_text())
                received.append(msg)
                if msg["event"] == "mark" and not msg["mark"]["name"].startswith("session:"):
                    ws.send_text(twilio_msg("mark", 2, mark=msg["mark"]))
                    if msg["mark"]["name"] == "1:500":
                        break
            for digit in "12#":
                ws.send_text(twilio_msg("dtmf", 3, dtmf={"track": "inbound_track", "digit": digit}))
            for data, _ in garbage(SID):
                if isinstance(data, bytes):
                    ws.send_bytes(data)
                else:
                    ws.send_text(data)
            for n, i in enumerate(range(0, len(speech), 160)):  # the caller talks over the greeting, 2x real time
                ws.send_text(media_msg(10 + n, speech[i : i + 160]))
                time.sleep(0.01)
            deadline = time.time() + 10
            while not any(isinstance(e, ev.AgentInterrupted) for e in fake.events) and time.time() < deadline:
                time.sleep(0.02)
            while not received or received[-1]["event"] != "clear":
                received.append(json.loads(ws.receive_text()))
            # Twilio echoes every mark a clear dropped: audio the caller never heard
            for msg in received:
                if msg["event"] == "mark" and msg["mark"]["name"].startswith("1:") and float(msg["mark"]["name"][2:]) > 500:
                    ws.send_text(twilio_msg("mark", 4, mark=msg["mark"]))
            ws.send_text(twilio_msg("stop", 5, stop={"accountSid": "AC1", "callSid": "CA1"}))
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    received.append(json.loads(ws.receive_text()))
    finally:
        fake.hub.close()
    assert closed.value.code == 1000
    [session] = fake.sessions
    [conn] = fake.connections
    assert fake.released == [session] and session.end_reason == "caller_ended"
    assert fake.starts[0].language == "en" and fake.starts[0].metadata == {
        "callSid": "CA1",
        "streamSid": SID,
        "accountSid": "AC1",
    }
    assert received[0] == {"event": "mark", "streamSid": SID, "mark": {"name": f"session:{session.id}"}}

    # media: 20 ms mu-law chunks carrying exactly the greeting's audio, a mark after every 5th
    media = [m for m in received if m["event"] == "media"]
    payload = b"".join(base64.b64decode(m["media"]["payload"]) for m in media)
    assert {len(base64.b64decode(m["media"]["payload"])) for m in media} == {160}
    assert payload == tw.ulaw_encode(ToneTTS.tone[: len(payload)])
    marks = [m["mark"]["name"] for m in received[1:] if m["event"] == "mark"]
    assert marks == [f"1:{100 * k}" for k in range(1, len(marks) + 1)] and len(marks) >= 5
    clear_at = received.index({"event": "clear", "streamSid": SID})
    assert media and all(m["event"] != "media" for m in received[clear_at:])

    # the interruption used the confirmed 500 ms, not the wall clock (which had run past 1 s)
    [interrupted] = [e for e in fake.events if isinstance(e, ev.AgentInterrupted)]
    assert interrupted.turn_id == 1 and interrupted.played_ms == 500
    assert interrupted.heard_text == "alpha bravo"  # 500 ms of a 3 s, 12-word clause
    greeting = session.state.turns[0]
    assert (
        greeting.role == "agent"
        and greeting.interrupted
        and greeting.heard == "alpha bravo"
        and greeting.text.strip() == GREETING
    )
    assert conn.marks_confirmed == 5  # the marks echoed after the clear were ignored

    assert session.state.slots["dtmf"] == "12#" and conn.dtmf_digits == 3
    expected = Counter(code for _, code in garbage(SID)) + Counter({"invalid_json": 1, "not_started": 1})
    assert conn.dropped == expected and conn.dropped_total == 8


def test_stream_signature_is_checked_on_the_handshake() -> None:
    fake = FakeParley(twilio_auth_token="s3cret", public_url="https://voice.example.com")
    stop = twilio_msg("stop", 1, stop={"accountSid": "AC1", "callSid": "CA1"})
    try:
        with TestClient(fake.app()) as client:
            for headers in ({}, {"X-Twilio-Signature": sign("s3cret", "wss://elsewhere.example.com/ws/twilio")}):
                with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws/twilio", headers=headers):
                    pass
                assert refused.value.code == 1008
            good = {"X-Twilio-Signature": sign("s3cret", "wss://voice.example.com/ws/twilio")}
            with client.websocket_connect("/ws/twilio", headers=good) as ws:
                ws.send_text(stop)  # accepted; a stream stopped before start ends without a call
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_text()
                assert closed.value.code == 1000
    finally:
        fake.hub.close()
    assert fake.sessions == [] and len(fake.connections) == 3


# ---- /twilio/voice ---------------------------------------------------------------------------------


async def voice(
    fake: FakeParley, url: str, method: str = "GET", form: dict[str, str] | None = None, signature: str | None = None
) -> httpx.Response:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    transport = httpx.ASGITransport(app=fake.app())
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.request(method, url, data=form, headers=headers)


def stream_of(twiml: str) -> tuple[str, list[tuple[str, str]]]:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    stream = root.find("./Connect/Stream")
    assert stream is not None
    return stream.get("url", ""), [(p.get("name", ""), p.get("value", "")) for p in stream.findall("Parameter")]


async def test_voice_webhook_connects_the_call_to_the_stream() -> None:
    fake = FakeParley()
    try:
        r = await voice(
            fake, "https://voice.example.com/twilio/voice?language=en-US&persona=default&junk=1", "POST", {"CallSid": "CA1"}
        )
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
        assert stream_of(r.text) == ("wss://voice.example.com/ws/twilio", [("language", "en-US"), ("persona", "default")])
        r = await voice(fake, "http://localhost:8000/twilio/voice")
        assert stream_of(r.text) == ("ws://localhost:8000/ws/twilio", [])
    finally:
        fake.hub.close()
    behind_proxy = FakeParley(public_url="https://public.example.org/parley/")
    try:
        r = await voice(behind_proxy, "http://10.0.0.5:8000/twilio/voice?voice=default")
        assert stream_of(r.text) == ("wss://public.example.org/parley/ws/twilio", [("voice", "default")])
    finally:
        behind_proxy.hub.close()


async def test_voice_webhook_signature() -> None:
    fake = FakeParley(twilio_auth_token="s3cret")
    url = "https://voice.example.com/twilio/voice?persona=default"
    form = {"CallSid": "CA1", "From": "+15550001111", "To": "+15550002222", "AccountSid": "AC1"}
    try:
        assert (await voice(fake, url, "POST", form, sign("s3cret", url, form))).status_code == 200
        assert (await voice(fake, url, "POST", {**form, "To": "+15559999999"}, sign("s3cret", url, form))).status_code == 403
        assert (await voice(fake, url, "POST", form, sign("wrong", url, form))).status_code == 403
        assert (await voice(fake, url, "POST", form)).status_code == 403
        assert (await voice(fake, url, "GET", signature=sign("s3cret", url))).status_code == 200
        assert (await voice(fake, url, "POST", {"Body": "x" * 70_000}, sign("s3cret", url))).status_code == 413
        assert (await voice(fake, url.replace("default", "other"), "GET", signature=sign("s3cret", url))).status_code == 403
    finally:
        fake.hub.close()
    unchecked = FakeParley()  # no token configured: nothing to check
    try:
        assert (await voice(unchecked, url, "POST", form)).status_code == 200
    finally:
        unchecked.hub.close()


# ---- a whole phone call against the real server ---------------------------------------------------


async def test_phone_call_end_to_end(server: ServerProcess) -> None:
    twiml = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"{server.url}/twilio/voice?persona=default", timeout=10).read().decode()
    )
    assert stream_of(twiml) == (f"{server.ws}/ws/twilio", [("persona", "default")])

    wav, ref = librivox_clips()[1]  # "he was not an ill disposed young man", 3 s
    phone = TwilioCaller(f"{server.ws}/ws/twilio", {"language": "en-US", "persona": "default"}, mark_delay_s=0.3)
    log = await phone.connect()
    try:
        await phone.wait_for("mark", timeout=10)
        assert log.session_id
        await phone.silence(1.2)  # an open phone line: the greeting plays
        for data, _ in garbage(phone.stream_sid):
            await phone.send_raw(data)
        await phone.dtmf("4")
        await phone.dtmf("2")
        await phone.say(load_pcm(wav, 8000))  # talk over the greeting
        await phone.wait_for("clear", timeout=10)
        await phone.silence(1.5)
        stored = await wait_call(server, log.session_id, lambda c: any(t["role"] == "caller" for t in c["turns"]))
        # the reply (turn 2) plays and its marks are echoed
        deadline = time.time() + 20
        while not any(m.name.startswith("2:") and m.played for m in log.echoed) and time.time() < deadline:
            await phone.silence(0.2)
    finally:
        await phone.stop()
    assert log.close_code == 1000

    # a transcript reached storage, in a call recorded as a Twilio one
    caller_turns = [t for t in stored["turns"] if t["role"] == "caller"]
    assert stored["transport"] == "twilio" and stored["language"] == "en"
    assert caller_turns and len(set(normalise(caller_turns[0]["text"])) & set(normalise(ref))) >= 4, caller_turns

    # agent audio: valid 20 ms mu-law carrying speech, marks sent and echoed
    assert log.media and {len(p) for _, p in log.media} == {160}
    greeting = tw.ulaw_decode(b"".join(p for t, p in log.media if t < log.clears[0][0]))
    assert 300 < np.sqrt(np.mean(greeting.astype(np.float64) ** 2)) < 20000
    turn2 = [m.name for m in log.echoed if m.name.startswith("2:") and m.played]
    assert turn2 and turn2[0] == "2:100"

    # barge-in: the stored greeting was cut at a position the phone confirmed by echoing a mark
    first = stored["turns"][0]
    assert first["role"] == "agent" and first["interrupted"] is True
    confirmed = [
        float(m.name.split(":")[1]) for m in log.echoed if m.name.startswith("1:") and m.played and m.t < log.clears[0][0]
    ]
    played_ms = first["metrics"]["played_ms"]
    assert confirmed and played_ms in confirmed, (played_ms, confirmed)
    assert played_ms >= max(confirmed) - 300  # the latest confirmation (a few may cross the clear in flight)
    assert played_ms <= log.clears[0][1] - 150  # less than the phone had played: the 300 ms echo delay shows
    heard, said = first["heard"].split(), first["text"].split()
    assert heard == said[: len(heard)] and len(heard) < len(said)
    flushed = [m.name for m in log.echoed if not m.played]
    assert flushed and all(n.startswith("1:") for n in flushed)  # the clear's echoes: not counted as heard

    ended = await wait_call(server, log.session_id, lambda c: c["ended_at"] is not None)
    assert ended["end_reason"] == "caller_ended"
    deadline = time.time() + 10
    summary = f"twilio stream {phone.stream_sid} (Parley call {log.session_id}) closed: 6 messages dropped"
    while summary not in server.log() and time.time() < deadline:
        await asyncio.sleep(0.1)
    line = next(x for x in server.log().splitlines() if summary in x)
    assert "'bad_payload': 1" in line and "'binary_frame': 1" in line and "2 dtmf digits" in line, line
