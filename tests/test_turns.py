"""TurnDetector on scripted VAD verdicts (caller-audio time, no clock)."""

from __future__ import annotations

from pipelines.turns import EndOfTurn, Paused, Started, TurnDetector
from pipelines.vad import VadResult


class Script:
    def __init__(self, det: TurnDetector) -> None:
        self.det = det
        self.t = 0
        self.actions: list[object] = []

    def frames(self, n: int, voiced: bool, onset: bool = False) -> None:
        for i in range(n):
            self.t += 20
            onset_ms = self.t - 20 if (onset and i == 0) else None
            self.actions += self.det.on_frame(VadResult(voiced, onset_ms, self.t))


def test_speech_pause_then_silence_ends_turn() -> None:
    s = Script(TurnDetector(200, 800, 30000))
    s.frames(10, False)
    s.frames(50, True, onset=True)
    s.frames(9, False)
    assert [type(a) for a in s.actions] == [Started]
    s.frames(1, False)
    assert isinstance(s.actions[-1], Paused) and s.actions[-1].t_ms == 1200
    s.frames(29, False)
    assert isinstance(s.actions[-1], Paused)
    s.frames(1, False)
    end = s.actions[-1]
    assert isinstance(end, EndOfTurn) and end.reason == "silence" and end.t_ms == 1200
    assert s.det.state == "idle"


def test_smart_turn_ends_early_and_stale_prediction_is_ignored() -> None:
    s = Script(TurnDetector(200, 800, 30000))
    s.frames(30, True, onset=True)
    s.frames(10, False)
    pause = s.actions[-1]
    assert isinstance(pause, Paused)
    assert s.det.on_prediction(pause.pause_id, complete=False) == []
    s.frames(5, True, onset=True)  # caller resumes: the old pause is stale
    assert isinstance(s.actions[-1], Started) and s.actions[-1].resumed
    assert s.det.on_prediction(pause.pause_id, complete=True) == []
    s.frames(10, False)
    pause2 = s.actions[-1]
    assert isinstance(pause2, Paused)
    (end,) = s.det.on_prediction(pause2.pause_id, complete=True)
    assert isinstance(end, EndOfTurn) and end.reason == "smart_turn"


def test_max_utterance_forces_a_final() -> None:
    s = Script(TurnDetector(200, 800, 2000))
    s.frames(120, True, onset=True)
    ends = [a for a in s.actions if isinstance(a, EndOfTurn)]
    assert len(ends) == 1 and ends[0].reason == "max_length"


def test_segment_voiced_time_counts_for_barge_in() -> None:
    s = Script(TurnDetector(200, 800, 30000))
    s.frames(12, True, onset=True)
    assert s.det.segment_voiced_ms == 240
