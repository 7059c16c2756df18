"""WebRTC: an in-process aiortc peer calls the real server over loopback with real speech."""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from typing import Any

import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from bench.caller import librivox_clips, load_pcm
from bench.metrics import wer
from pipelines.transports.webrtc import frame_to_mono
from tests.conftest import ServerProcess

RATE = 48000


class ClipTrack(MediaStreamTrack):
    """A microphone that says ``pcm`` after ``lead_s`` of silence, then stays quiet."""

    kind = "audio"

    def __init__(self, pcm: np.ndarray, lead_s: float = 1.0) -> None:
        super().__init__()
        self.pcm = np.concatenate([np.zeros(int(RATE * lead_s), np.int16), pcm])
        self.pos = 0
        self.start: float | None = None
        self.done_at: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = RATE // 50
        if self.start is None:
            self.start = time.monotonic()
        wait = self.start + self.pos / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = self.pcm[self.pos : self.pos + n]
        if len(chunk) < n:
            if self.done_at is None:
                self.done_at = time.monotonic()
            chunk = np.concatenate([chunk, np.zeros(n - len(chunk), np.int16)])
        frame = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.pos
        frame.time_base = fractions.Fraction(1, RATE)
        self.pos += n
        return frame


async def test_webrtc_call_transcribes_and_answers(server: ServerProcess) -> None:
    wav, ref = librivox_clips()[2]
    mic = ClipTrack(load_pcm(wav, RATE), lead_s=5.5)  # let the greeting finish first
    pc = RTCPeerConnection()
    events: list[dict[str, Any]] = []
    heard: list[np.ndarray] = []
    channel = pc.createDataChannel("events")

    @channel.on("message")
    def _on_message(msg: Any) -> None:
        events.append(json.loads(msg))

    tasks: list[asyncio.Task[None]] = []

    async def listen(track: MediaStreamTrack) -> None:
        try:
            while True:
                heard.append(frame_to_mono(await track.recv()))  # type: ignore[arg-type]
        except MediaStreamError:
            pass

    @pc.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.create_task(listen(track)))

    pc.addTrack(mic)
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(timeout=20) as http:
        r = await http.post(f"{server.url}/webrtc/offer", json={"sdp": pc.localDescription.sdp, "type": "offer", "language": "en"})
        assert r.status_code == 200, r.text
        answer = r.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))

        def kinds() -> list[str]:
            return [e["type"] for e in events]

        deadline = time.monotonic() + 45
        while "agent.text.done" not in kinds()[kinds().index("transcript.final") :] if "transcript.final" in kinds() else True:
            assert time.monotonic() < deadline, kinds()
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        final = next(e for e in events if e["type"] == "transcript.final")
        assert wer(ref, final["text"]) <= 0.35, final
        assert events[0]["type"] == "session.created" and events[0]["output_audio"]["sample_rate"] == RATE
        audio = np.concatenate(heard)
        # the agent spoke (greeting + reply): seconds of non-silent audio came back over RTP/Opus
        loud = np.abs(audio.astype(np.int32)) > 500
        assert loud.sum() > RATE * 0.5, loud.sum()

        await pc.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # closing the peer ends the server session and it is stored as ended
        sid = answer["session_id"]
        deadline = time.monotonic() + 20
        while True:
            call = (await http.get(f"{server.url}/api/calls/{sid}")).json()
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
