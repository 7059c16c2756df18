"""A scripted WebRTC caller (aiortc): a microphone track that speaks clips on cue, the agent's
audio track recorded with arrival times, and the data channel's events."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from bench.caller import speech_bounds
from pipelines.transports.webrtc import PacedAudioTrack, frame_to_mono

RATE = 48000


class ScriptedMic(PacedAudioTrack):
    """Silence until :meth:`say` queues a clip; records when the clip's speech starts and ends leave."""

    def __init__(self) -> None:
        super().__init__()
        self._queue: list[np.ndarray] = []
        self._marks: list[tuple[int, list[float]]] = []
        self._sent = 0
        self.speech_start_sent: list[float] = []
        self.speech_end_sent: list[float] = []
        self.idle = asyncio.Event()
        self.idle.set()

    def say(self, pcm: np.ndarray) -> None:
        first, last = speech_bounds(pcm, RATE)
        base = self._sent + sum(len(x) for x in self._queue)
        self._marks += [(base + first, self.speech_start_sent), (base + max(first, last - 1), self.speech_end_sent)]
        self._queue.append(pcm)
        self.idle.clear()

    def _take(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.int16)
        filled = 0
        while filled < n and self._queue:
            head = self._queue[0]
            k = min(n - filled, len(head))
            out[filled : filled + k] = head[:k]
            if k == len(head):
                self._queue.pop(0)
            else:
                self._queue[0] = head[k:]
            filled += k
        now = time.perf_counter()
        for at, sink in list(self._marks):
            if self._sent <= at < self._sent + filled:
                sink.append(now)
                self._marks.remove((at, sink))
        self._sent += filled
        if not self._queue:
            self.idle.set()
        return out


class RTCCaller:
    """Connect with :meth:`connect`; ``events`` and ``audio`` (arrival time, samples) fill as the call runs."""

    def __init__(self, base_url: str, **options: Any) -> None:
        self.base_url = base_url
        self.options = options
        self.pc = RTCPeerConnection()
        self.mic = ScriptedMic()
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.audio: list[tuple[float, np.ndarray]] = []
        self.session_id = ""
        self._tasks: list[asyncio.Task[None]] = []
        self.channel = self.pc.createDataChannel("events")
        self.channel.add_listener("message", self._on_message)
        self.pc.add_listener("track", self._on_track)
        self.pc.addTrack(self.mic)

    def _on_message(self, msg: Any) -> None:
        self.events.append((time.perf_counter(), json.loads(msg)))

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.create_task(self._listen(track)))

    async def _listen(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, AudioFrame):
                    self.audio.append((time.perf_counter(), frame_to_mono(frame)))
        except MediaStreamError:
            pass

    async def connect(self, http: httpx.AsyncClient) -> dict[str, Any]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        r = await http.post(f"{self.base_url}/webrtc/offer", json={"sdp": self.pc.localDescription.sdp, "type": "offer", **self.options})
        r.raise_for_status()
        answer: dict[str, Any] = r.json()
        self.session_id = answer["session_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        return answer

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e.get("type") == kind]

    async def wait_for(self, kind: str, count: int = 1, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.perf_counter() + timeout
        while len(self.of(kind)) < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no {kind} #{count}; got {[e.get('type') for _, e in self.events]}")
            await asyncio.sleep(0.02)
        return self.of(kind)[count - 1]

    def first_loud_audio_after(self, t: float, threshold: int = 500) -> float | None:
        for ts, pcm in self.audio:
            if ts >= t and len(pcm) and int(np.abs(pcm.astype(np.int32)).max()) > threshold:
                return ts
        return None

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
