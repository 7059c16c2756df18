"""WebRTC: an in-process aiortc peer calls the real server over loopback with real speech."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np

from bench.caller import librivox_clips, load_pcm
from bench.metrics import wer
from bench.rtc_caller import RTCCaller
from tests.conftest import ServerProcess

RATE = 48000


async def test_webrtc_call_transcribes_and_answers(server: ServerProcess) -> None:
    wav, ref = librivox_clips()[2]
    caller = RTCCaller(server.url, language="en")
    async with httpx.AsyncClient(timeout=20) as http:
        try:
            answer = await caller.connect(http)
            await caller.wait_for("agent.audio.done", timeout=30)  # the greeting, heard over RTP
            caller.mic.say(load_pcm(wav, RATE))
            final = await caller.wait_for("transcript.final", timeout=30)
            assert wer(ref, final["text"]) <= 0.35, final
            await caller.wait_for("agent.audio.done", 2, timeout=30)
            metrics = await caller.wait_for("turn.metrics", timeout=10)
            assert metrics["voice_to_voice_ms"] > 0
            assert caller.of("session.created")[0]["output_audio"]["sample_rate"] == RATE
            # the reply came back as Opus audio with real energy after the caller stopped speaking
            assert caller.first_loud_audio_after(caller.mic.speech_end_sent[-1]) is not None
            audio = np.concatenate([pcm for _, pcm in caller.audio])
            assert (np.abs(audio.astype(np.int32)) > 500).sum() > RATE * 0.5
        finally:
            await caller.close()
        # closing the peer ends the server session and it is stored as ended
        deadline = time.monotonic() + 20
        while True:
            call = (await http.get(f"{server.url}/api/calls/{answer['session_id']}")).json()
            if call["ended_at"] is not None:
                break
            assert time.monotonic() < deadline, call
            await asyncio.sleep(0.2)
        assert call["transport"] == "webrtc"
        assert any(t["role"] == "caller" for t in call["turns"])


async def test_bad_offers_are_rejected(server: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{server.url}/webrtc/offer", content=b"{nope")
        assert r.status_code == 400 and r.json()["error"] == "invalid_offer"
        r = await http.post(f"{server.url}/webrtc/offer", json={"sdp": "v=0 but no audio here", "type": "offer"})
        assert r.status_code == 400
        r = await http.post(f"{server.url}/webrtc/offer", json={"sdp": "v=0\r\nm=audio 9 garbage\r\n", "type": "offer"})
        assert r.status_code == 400 and "negotiate" in r.json()["message"]
        r = await http.post(f"{server.url}/webrtc/offer", json={"sdp": "v=0\r\nm=audio 9 x\r\n", "persona": "nobody"})
        assert r.status_code == 400 and r.json()["error"] == "unknown_persona"
        health = (await http.get(f"{server.url}/health")).json()
        assert health["sessions"] == 0 or health["status"] == "ok"
