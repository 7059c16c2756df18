"""Paced delivery of agent audio, and the two-lane outbox every transport drains.

Audio leaves no faster than real time plus ``lead_ms``, so barge-in can stop what the caller
has not heard yet; :class:`Playout` knows how much was played and which words that covered.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from pipelines import events as ev


class Outbox:
    """Server -> client events for one call: an ordered data lane and a control lane that jumps it.

    Producers of agent audio ``await put(...)`` (they wait while ``max_items`` are queued);
    everything else is put without waiting. :meth:`flush_audio` drops queued audio on barge-in.
    """

    def __init__(self, max_items: int = 256) -> None:
        self._data: deque[ev.OutboundEvent] = deque()
        self._control: deque[ev.OutboundEvent] = deque()
        self._max = max_items
        self._changed = asyncio.Event()
        self.closed = False
        self.dropped_audio = 0

    def put_nowait(self, event: ev.OutboundEvent) -> None:
        if self.closed:
            return
        (self._control if isinstance(event, ev.CONTROL_TYPES) else self._data).append(event)
        self._changed.set()

    async def put(self, event: ev.OutboundEvent) -> None:
        while len(self._data) >= self._max and not self.closed:
            self._changed.clear()
            await self._changed.wait()
        self.put_nowait(event)

    def flush_audio(self, turn_id: int) -> int:
        """Remove the turn's queued audio (and its audio.done); returns the bytes dropped."""
        kept: deque[ev.OutboundEvent] = deque()
        dropped = 0
        for e in self._data:
            if isinstance(e, ev.AgentAudio) and e.turn_id == turn_id:
                dropped += len(e.pcm)
            elif not (isinstance(e, ev.AgentAudioDone) and e.turn_id == turn_id):
                kept.append(e)
        self._data = kept
        self.dropped_audio += dropped
        self._changed.set()
        return dropped

    async def get(self) -> ev.OutboundEvent:
        while True:
            if self._control:
                return self._control.popleft()
            if self._data:
                event = self._data.popleft()
                self._changed.set()
                return event
            if self.closed:
                raise EOFError
            self._changed.clear()
            await self._changed.wait()

    def close(self) -> None:
        self.closed = True
        self._changed.set()

    def __len__(self) -> int:
        return len(self._data) + len(self._control)


@dataclass(slots=True)
class _Clause:
    text: str
    start_ms: float
    end_ms: float


class Playout:
    """Sends one reply's audio frames at real-time pace; tracks what the caller has heard."""

    def __init__(self, outbox: Outbox, turn_id: int, rate: int, frame_ms: int = 40, lead_ms: int = 200) -> None:
        self._outbox = outbox
        self.turn_id = turn_id
        self._rate = rate
        self._frame = rate * frame_ms // 1000
        self._lead = lead_ms / 1000
        self._t0: float | None = None
        self.sent_ms = 0.0
        self.first_audio_at: float | None = None
        self._clauses: list[_Clause] = []
        self._confirmed_ms: float | None = None  # from the far end (e.g. Twilio mark echoes)

    async def play(self, text: str, pcm: np.ndarray) -> None:
        start = self.sent_ms
        data = np.asarray(pcm, dtype="<i2")
        self._clauses.append(_Clause(text, start, start + len(data) * 1000 / self._rate))
        for i in range(0, len(data), self._frame):
            chunk = data[i : i + self._frame]
            now = time.perf_counter()
            if self._t0 is None:
                self._t0 = now
                self.first_audio_at = now
            ahead = self.sent_ms / 1000 - (now - self._t0)
            if ahead > self._lead:
                await asyncio.sleep(ahead - self._lead)
            await self._outbox.put(ev.AgentAudio(chunk.tobytes(), self.turn_id))
            self.sent_ms += len(chunk) * 1000 / self._rate

    def confirm(self, played_ms: float) -> None:
        """The far end reports it has played ``played_ms`` of this reply; :meth:`played_ms` trusts it from now on."""
        self._confirmed_ms = max(played_ms, self._confirmed_ms or 0.0)

    def played_ms(self) -> int:
        """Milliseconds the caller has heard: the far end's confirmation if any, else sent audio
        played in real time from the first frame."""
        if self._confirmed_ms is not None:
            return math.ceil(min(self._confirmed_ms, self.sent_ms))
        if self._t0 is None:
            return 0
        return int(min(self.sent_ms, (time.perf_counter() - self._t0) * 1000))

    def heard_text(self, played_ms: float) -> str:
        """The words covered by ``played_ms`` of audio: whole clauses, then a proportional share of words."""
        words: list[str] = []
        for c in self._clauses:
            if played_ms >= c.end_ms:
                words.extend(c.text.split())
            elif played_ms > c.start_ms:
                parts = c.text.split()
                share = (played_ms - c.start_ms) / max(1.0, c.end_ms - c.start_ms)
                words.extend(parts[: int(len(parts) * share)])
                break
            else:
                break
        return " ".join(words)

    async def wait_played(self) -> None:
        """Sleep until the caller has heard everything sent (barge-in stays possible meanwhile)."""
        if self._t0 is not None:
            remaining = self.sent_ms / 1000 - (time.perf_counter() - self._t0)
            if remaining > 0:
                await asyncio.sleep(remaining)
