"""A scripted Twilio for ``/ws/twilio``: plays Twilio's side of a bidirectional Media Stream.

It sends ``connected`` and ``start`` like Twilio, streams caller audio as 20 ms mu-law ``media``
messages at real-time pace, and behaves like a phone playing the agent's audio: each ``mark`` is
echoed when the audio sent before it has finished playing (plus ``mark_delay_s`` of network), and
``clear`` drops the buffered audio and echoes every outstanding mark at once, as Twilio does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets

from pipelines.codecs.twilio import CHUNK_SAMPLES, RATE, ulaw_encode


@dataclass
class EchoedMark:
    name: str
    t: float
    played: bool  # False: echoed because a clear dropped the audio before it


@dataclass
class PhoneLog:
    """What the phone received and did, with perf_counter times."""

    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    media: list[tuple[float, bytes]] = field(default_factory=list)  # (arrival, mu-law payload)
    echoed: list[EchoedMark] = field(default_factory=list)
    clears: list[tuple[float, float]] = field(default_factory=list)  # (time, agent ms played by then)
    session_id: str = ""
    close_code: int | None = None

    def of(self, event: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m.get("event") == event]


class TwilioCaller:
    """:meth:`connect`, then :meth:`say` / :meth:`silence` / :meth:`dtmf` / :meth:`send_raw`; :meth:`stop` hangs up."""

    def __init__(self, url: str, custom_parameters: dict[str, str] | None = None, mark_delay_s: float = 0.0, realtime: float = 1.0) -> None:
        self.url = url
        self.custom_parameters = custom_parameters or {}
        self.mark_delay_s = mark_delay_s
        self.realtime = realtime
        self.stream_sid = "MZ" + uuid.uuid4().hex
        self.call_sid = "CA" + uuid.uuid4().hex
        self.account_sid = "AC" + uuid.uuid4().hex
        self.log = PhoneLog()
        self._ws: Any = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._seq = 0
        self._chunk = 0
        self._t_next = 0.0
        self._play_end = 0.0  # when the agent audio received so far will have finished playing
        self._agent_ms = 0.0  # agent audio received (ms)
        self._pending: list[tuple[float, str]] = []  # (due, mark name)
        self._stopped = False  # after stop, Twilio sends nothing more

    async def connect(self) -> PhoneLog:
        self._ws = await websockets.connect(self.url)
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"}, seq=False)
        start = {
            "streamSid": self.stream_sid,
            "accountSid": self.account_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "customParameters": self.custom_parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1},
        }
        await self._send({"event": "start", "start": start})
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._echo())]
        self._t_next = time.perf_counter()
        return self.log

    async def _send(self, msg: dict[str, Any], seq: bool = True) -> None:
        if seq:
            self._seq += 1
            msg = {"event": msg["event"], "sequenceNumber": str(self._seq), **msg, "streamSid": self.stream_sid}
        await self.send_raw(json.dumps(msg))

    async def send_raw(self, data: str | bytes) -> None:
        async with self._lock:
            await self._ws.send(data)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                now = time.perf_counter()
                msg = json.loads(raw)
                self.log.messages.append((now, msg))
                if msg.get("event") == "media":
                    payload = base64.b64decode(msg["media"]["payload"], validate=True)
                    self.log.media.append((now, payload))
                    self._play_end = max(self._play_end, now) + len(payload) / RATE
                    self._agent_ms += len(payload) * 1000 / RATE
                elif msg.get("event") == "mark":
                    name = msg["mark"]["name"]
                    if name.startswith("session:"):
                        self.log.session_id = name.split(":", 1)[1]
                    self._pending.append((max(self._play_end, now) + self.mark_delay_s, name))
                elif msg.get("event") == "clear":
                    self.log.clears.append((now, self.played_ms(now)))
                    self._agent_ms = self.played_ms(now)
                    self._play_end = now
                    flushed, self._pending = self._pending, []
                    for _, name in flushed:
                        await self._echo_mark(name, played=False)
        except websockets.ConnectionClosed as exc:
            self.log.close_code = exc.rcvd.code if exc.rcvd else None
        else:
            self.log.close_code = self._ws.close_code

    def played_ms(self, now: float | None = None) -> float:
        """Agent audio the phone has played so far."""
        now = time.perf_counter() if now is None else now
        return max(0.0, self._agent_ms - max(0.0, self._play_end - now) * 1000)

    async def _echo(self) -> None:
        while True:
            now = time.perf_counter()
            due = [p for p in self._pending if p[0] <= now]
            if due:
                self._pending = [p for p in self._pending if p[0] > now]
                for _, name in due:
                    await self._echo_mark(name, played=True)
            await asyncio.sleep(0.005)

    async def _echo_mark(self, name: str, played: bool) -> None:
        if self._stopped:
            return
        try:
            await self._send({"event": "mark", "mark": {"name": name}})
        except websockets.ConnectionClosed:
            return
        self.log.echoed.append(EchoedMark(name, time.perf_counter(), played))

    async def say(self, pcm: np.ndarray) -> None:
        """Stream int16 8 kHz audio as 20 ms ``media`` messages at real-time pace."""
        for i in range(0, len(pcm), CHUNK_SAMPLES):
            chunk = np.zeros(CHUNK_SAMPLES, dtype=np.int16)
            part = pcm[i : i + CHUNK_SAMPLES]
            chunk[: len(part)] = part
            if self.realtime > 0:
                self._t_next += CHUNK_SAMPLES / RATE / self.realtime
                delay = self._t_next - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    self._t_next = time.perf_counter()
            self._chunk += 1
            media = {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str((self._chunk - 1) * 1000 * CHUNK_SAMPLES // RATE),
                "payload": base64.b64encode(ulaw_encode(chunk)).decode("ascii"),
            }
            await self._send({"event": "media", "media": media})

    async def silence(self, seconds: float) -> None:
        await self.say(np.zeros(int(RATE * seconds), dtype=np.int16))

    async def dtmf(self, digit: str) -> None:
        await self._send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}})

    async def wait_for(self, event: str, count: int = 1, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.perf_counter() + timeout
        while len(self.log.of(event)) < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no {event} #{count} within {timeout}s")
            if self._tasks and self._tasks[0].done():
                raise ConnectionError(f"stream closed ({self.log.close_code}) waiting for {event}")
            await asyncio.sleep(0.01)
        return self.log.of(event)[count - 1]

    async def stop(self, timeout: float = 30.0) -> PhoneLog:
        """Send ``stop`` (the caller hung up) and wait for Parley to close the stream."""
        await self._send({"event": "stop", "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})
        self._stopped = True
        try:
            await asyncio.wait_for(asyncio.shield(self._tasks[0]), timeout)
        finally:
            await self.close()
        return self.log

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
