"""Turn-taking: when has the caller stopped, and when is their turn over.

A pure state machine on caller-audio time. The runner feeds it every VAD verdict and the
Smart Turn probability it asked for; it answers with facts for the runner to act on.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.vad import FRAME_MS
from pipelines.vad import VadResult


@dataclass(frozen=True, slots=True)
class Started:
    """Speech began at ``t_ms`` (also after a pause inside the same turn)."""

    t_ms: int
    resumed: bool


@dataclass(frozen=True, slots=True)
class Paused:
    """The caller has been quiet for ``turn_silence_ms``; ask Smart Turn and decode speculatively."""

    t_ms: int  # end of the last voiced frame
    pause_id: int


@dataclass(frozen=True, slots=True)
class EndOfTurn:
    t_ms: int  # end of the last voiced frame
    reason: str  # "smart_turn" | "silence" | "max_length"


Action = Started | Paused | EndOfTurn


class TurnDetector:
    """States: idle -> speaking -> paused -> (speaking | end of turn -> idle)."""

    def __init__(self, silence_ms: int, max_silence_ms: int, max_utterance_ms: int) -> None:
        self.silence_ms = silence_ms
        self.max_silence_ms = max_silence_ms
        self.max_utterance_ms = max_utterance_ms
        self.state = "idle"
        self.turn_start_ms = 0
        self.segment_voiced_ms = 0
        self.last_voiced_ms = 0
        self._pause_id = 0

    def on_frame(self, r: VadResult) -> list[Action]:
        out: list[Action] = []
        if r.onset_ms is not None:
            if self.state == "idle":
                self.turn_start_ms = r.onset_ms
            out.append(Started(r.onset_ms, resumed=self.state == "paused"))
            self.state = "speaking"
            self.segment_voiced_ms = 0
            self._pause_id += 1
        if self.state == "idle":
            return out
        if r.voiced:
            self.last_voiced_ms = r.t_ms
            if self.state == "speaking":
                self.segment_voiced_ms += FRAME_MS
        quiet = r.t_ms - self.last_voiced_ms
        if self.state == "speaking" and quiet >= self.silence_ms:
            self.state = "paused"
            out.append(Paused(self.last_voiced_ms, self._pause_id))
        elif self.state == "paused" and quiet >= self.max_silence_ms:
            out.append(self._end("silence"))
        elif self.state == "speaking" and r.t_ms - self.turn_start_ms >= self.max_utterance_ms:
            out.append(self._end("max_length"))
        return out

    def on_prediction(self, pause_id: int, complete: bool) -> list[Action]:
        """Smart Turn answered for pause ``pause_id``; stale answers (speech resumed) are ignored."""
        if complete and self.state == "paused" and pause_id == self._pause_id:
            return [self._end("smart_turn")]
        return []

    def _end(self, reason: str) -> EndOfTurn:
        self.state = "idle"
        self._pause_id += 1
        return EndOfTurn(self.last_voiced_ms, reason)
