"""VADStage: 20 ms frames in, speech onset / voiced-or-not decisions out, on caller-audio time."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from models.vad import FRAME_MS, VAD


@dataclass(frozen=True, slots=True)
class VadResult:
    """One frame's verdict. ``onset_ms`` is set on the frame that confirms a new speech segment."""

    voiced: bool
    onset_ms: int | None
    t_ms: int  # caller-audio time at the end of this frame


class VADStage:
    """Hysteresis over a frame VAD: speech begins when ``start_ms`` of the last ``window_ms`` is voiced.

    Call :meth:`process` for every 20 ms 16 kHz frame, in order; :attr:`in_speech` tells whether
    a segment is open, :attr:`silence_ms` how long the caller has been quiet inside it.
    """

    def __init__(self, vad: VAD, start_ms: int = 120, window_ms: int = 300) -> None:
        self._vad = vad
        self._need = max(1, start_ms // FRAME_MS)
        self._window: deque[bool] = deque(maxlen=max(self._need, window_ms // FRAME_MS))
        self.t_ms = 0
        self.in_speech = False
        self.silence_ms = 0
        self.last_voiced_ms = 0
        self.voiced_ms_total = 0

    def process(self, frame: np.ndarray) -> VadResult:
        voiced = self._vad.is_speech(np.asarray(frame, dtype="<i2").tobytes())
        self.t_ms += FRAME_MS
        self._window.append(voiced)
        onset: int | None = None
        if voiced:
            self.last_voiced_ms = self.t_ms
            self.silence_ms = 0
            self.voiced_ms_total += FRAME_MS
        else:
            self.silence_ms += FRAME_MS
        if not self.in_speech and sum(self._window) >= self._need:
            self.in_speech = True
            self.silence_ms = 0
            onset = self.t_ms - FRAME_MS * len(self._window) + FRAME_MS * self._first_voiced()
        return VadResult(voiced, onset, self.t_ms)

    def _first_voiced(self) -> int:
        for i, v in enumerate(self._window):
            if v:
                return i
        return 0

    def end_segment(self) -> None:
        """Close the open segment (the turn detector decided it ended)."""
        self.in_speech = False
        self._window.clear()
