"""A scripted caller for /ws/call: streams audio like a microphone and records what comes back.

Used by the benchmarks and the end-to-end tests (a real ``websockets`` client, real pacing).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import websockets

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def librivox_clips() -> list[tuple[Path, str]]:
    """(wav, reference transcript) for the Debian pocketsphinx-testdata LibriVox clips."""
    refs: dict[str, str] = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, fid = line.rpartition("(")
        refs[fid.strip(") ")] = text.replace("<s>", "").replace("</s>", "").strip()
    return [(LIBRIVOX / f"{fid}.wav", refs[fid]) for fid in sorted(refs)]


def speech_bounds(pcm: np.ndarray, rate: int, frame_ms: int = 20, rel: float = 0.1) -> tuple[int, int]:
    """(first, last) sample of speech in a clip: frames whose RMS exceeds ``rel`` of the loudest frame."""
    n = rate * frame_ms // 1000
    frames = pcm[: len(pcm) // n * n].astype(np.float64).reshape(-1, n)
    rms = np.sqrt((frames**2).mean(axis=1))
    loud = np.nonzero(rms > rel * rms.max())[0] if len(rms) else np.array([], dtype=int)
    if not len(loud):
        return 0, len(pcm)
    return int(loud[0] * n), int((loud[-1] + 1) * n)


def load_pcm(path: Path, rate: int) -> np.ndarray:
    audio, sr = sf.read(str(path), dtype="int16")
    if audio.ndim > 1:
        audio = audio[:, 0]
    if sr != rate:
        audio = soxr.resample(audio, sr, rate).astype(np.int16)
    return np.asarray(audio, dtype=np.int16)


@dataclass
class CallLog:
    """Everything the caller received, with arrival times (perf_counter seconds)."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    audio: list[tuple[float, int, bytes]] = field(default_factory=list)  # (t, turn, pcm)
    output_rate: int = 0
    session_id: str = ""
    speech_end_sent: list[float] = field(default_factory=list)  # when the caller's last voiced frame left
    speech_start_sent: list[float] = field(default_factory=list)  # when the first voiced frame left
    close_code: int | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e.get("type") == kind]

    def first_after(self, kind: str, t: float) -> float | None:
        for ts, e in self.events:
            if ts >= t and e.get("type") == kind:
                return ts
        return None

    def first_audio_after(self, t: float) -> float | None:
        for ts, _, _ in self.audio:
            if ts >= t:
                return ts
        return None


class Caller:
    """Connect with :meth:`connect`, stream with :meth:`say` / :meth:`silence`, hang up with :meth:`close`."""

    def __init__(self, url: str, rate: int = 16000, language: str = "en", frame_ms: int = 20, realtime: float = 1.0, **start: Any) -> None:
        self.url = url
        self.rate = rate
        self.language = language
        self.frame = rate * frame_ms // 1000
        self.frame_s = frame_ms / 1000
        self.realtime = realtime
        self.start_extra = start
        self.log = CallLog()
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._t_next = 0.0

    async def connect(self) -> CallLog:
        self._ws = await websockets.connect(self.url, max_size=2**22)
        await self._ws.send(json.dumps({"type": "session.start", "audio": {"format": "pcm16", "sample_rate": self.rate}, "language": self.language, **self.start_extra}))
        self._reader = asyncio.create_task(self._read())
        while not self.log.session_id:
            if self._reader.done():
                self._reader.result()
                raise ConnectionError(f"closed before session.created: {self.log.events}")
            await asyncio.sleep(0.01)
        self._t_next = time.perf_counter()
        return self.log

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                now = time.perf_counter()
                if isinstance(msg, bytes):
                    turn = max((e.get("turn_id", 0) for _, e in self.log.events if e.get("type") == "agent.text"), default=0)
                    self.log.audio.append((now, turn, msg))
                    continue
                event = json.loads(msg)
                self.log.events.append((now, event))
                if event.get("type") == "session.created":
                    self.log.output_rate = event["output_audio"]["sample_rate"]
                    self.log.session_id = event["session_id"]
        except websockets.ConnectionClosed as exc:
            self.log.close_code = exc.rcvd.code if exc.rcvd else None
        else:
            self.log.close_code = self._ws.close_code

    async def _paced_send(self, pcm: np.ndarray, marks: dict[int, list[float]] | None = None) -> None:
        for i in range(0, len(pcm), self.frame):
            if marks is not None:
                for at, sink in marks.items():
                    if i <= at < i + self.frame:
                        sink.append(time.perf_counter())
            if self.realtime > 0:
                self._t_next += self.frame_s / self.realtime
                delay = self._t_next - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    self._t_next = time.perf_counter()
            await self._ws.send(pcm[i : i + self.frame].astype("<i2").tobytes())

    async def say(self, pcm: np.ndarray) -> None:
        """Stream a clip; records when its first and last voiced frames left (speech start / stop)."""
        first, last = speech_bounds(pcm, self.rate)
        last = min(max(0, last - 1), len(pcm) - 1)
        await self._paced_send(pcm, {first: self.log.speech_start_sent, last: self.log.speech_end_sent})

    async def silence(self, seconds: float) -> None:
        await self._paced_send(np.zeros(int(self.rate * seconds), dtype=np.int16))

    async def wait_for(self, kind: str, count: int = 1, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.perf_counter() + timeout
        while len(self.log.of(kind)) < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no {kind} #{count} within {timeout}s; got {[e.get('type') for _, e in self.log.events]}")
            if self._reader is not None and self._reader.done():
                raise ConnectionError(f"connection closed waiting for {kind}: {self.log.events[-3:]}")
            await asyncio.sleep(0.01)
        return self.log.of(kind)[count - 1]

    async def listen(self, seconds: float) -> None:
        """Send silence while the agent talks (a live microphone never goes quiet on the wire)."""
        await self.silence(seconds)

    async def send_raw(self, data: str | bytes) -> None:
        await self._ws.send(data)

    async def close(self, end: bool = True) -> CallLog:
        if end and self._ws is not None:
            try:
                await self._ws.send(json.dumps({"type": "session.end"}))
            except websockets.ConnectionClosed:
                pass
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 10)
            except TimeoutError:
                self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()
        return self.log
