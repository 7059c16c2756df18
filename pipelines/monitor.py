"""Live fan-out of every call's events to supervisors (``/ws/monitor``).

Publishing never waits: each subscriber has a bounded queue and a slow one loses its oldest
messages (counted), so a supervisor's browser can never slow a call down.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Subscriber:
    """One supervisor connection's queue. Await :meth:`get`; check :attr:`dropped`."""

    max_items: int
    _q: deque[dict[str, Any]] = field(default_factory=deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    closed: bool = False

    def put(self, msg: dict[str, Any]) -> None:
        if self.closed:
            return
        self._q.append(msg)
        while len(self._q) > self.max_items:
            self._q.popleft()
            self.dropped += 1
        self._ready.set()

    async def get(self) -> dict[str, Any]:
        while not self._q:
            if self.closed:
                raise EOFError
            self._ready.clear()
            await self._ready.wait()
        return self._q.popleft()

    def close(self) -> None:
        self.closed = True
        self._ready.set()


@dataclass
class LiveCall:
    """What a supervisor who connects mid-call needs to catch up."""

    call_id: str
    started_at: float
    transport: str
    language: str
    persona: str
    transcript: list[dict[str, Any]] = field(default_factory=list)
    emotion: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "started_at": self.started_at,
            "transport": self.transport,
            "language": self.language,
            "persona": self.persona,
            "transcript": self.transcript[-50:],
            "emotion": self.emotion[-120:],
            "alerts": self.alerts[-20:],
        }


class Monitor:
    """Keeps a snapshot of live calls and fans their events out to subscribers."""

    def __init__(self, max_queue: int = 1000) -> None:
        self._subs: set[Subscriber] = set()
        self._max = max_queue
        self.live: dict[str, LiveCall] = {}

    def subscribe(self) -> Subscriber:
        sub = Subscriber(self._max)
        self._subs.add(sub)
        sub.put({"type": "snapshot", "calls": [c.summary() for c in self.live.values()]})
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.close()
        self._subs.discard(sub)

    def call_started(self, call_id: str, *, transport: str, language: str, persona: str) -> None:
        self.live[call_id] = LiveCall(call_id, time.time(), transport, language, persona)
        self._publish({"type": "call.started", "call_id": call_id, "transport": transport, "language": language, "persona": persona, "t": time.time()})

    def call_ended(self, call_id: str, reason: str) -> None:
        self.live.pop(call_id, None)
        self._publish({"type": "call.ended", "call_id": call_id, "reason": reason, "t": time.time()})

    def publish(self, call_id: str, msg: dict[str, Any]) -> None:
        """Record (for late joiners) and fan out one call event; ``msg`` must have a ``type``."""
        call = self.live.get(call_id)
        kind = msg.get("type")
        if call is not None:
            if kind in ("transcript.final", "agent.text.done", "agent.interrupted", "emotion.utterance", "turn.metrics"):
                call.transcript.append(msg)
            elif kind == "emotion":
                call.emotion.append(msg)
            elif kind == "emotion.alert":
                call.alerts.append(msg)
        self._publish({**msg, "call_id": call_id})

    def _publish(self, msg: dict[str, Any]) -> None:
        for sub in list(self._subs):
            sub.put(msg)

    @property
    def subscribers(self) -> int:
        return len(self._subs)
