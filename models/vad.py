"""Frame-level voice activity: is there speech in this 20 ms of 16 kHz audio?"""

from __future__ import annotations

from typing import Protocol

import numpy as np

FRAME_MS = 20
SAMPLE_RATE = 16000
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000


class VAD(Protocol):
    """Classifies one 20 ms frame of 16 kHz PCM16 bytes."""

    def is_speech(self, frame: bytes) -> bool: ...


class WebRtcVAD:
    """Google's WebRTC VAD (GMM, ~0.14 ms per second of audio). One instance per call: it keeps state."""

    def __init__(self, mode: int = 3, min_rms: float = 0.004) -> None:
        import webrtcvad

        if mode not in (0, 1, 2, 3):
            raise ValueError(f"webrtcvad mode must be 0-3, not {mode}")
        self._vad = webrtcvad.Vad(mode)
        # webrtcvad fires on faint noise; below this RMS (full scale = 1.0) a frame is silence.
        self._min_rms = min_rms

    def is_speech(self, frame: bytes) -> bool:
        if len(frame) != FRAME_SAMPLES * 2:
            raise ValueError(f"VAD frames are {FRAME_SAMPLES * 2} bytes, got {len(frame)}")
        pcm = np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
        if float(np.sqrt(np.mean(pcm * pcm))) < self._min_rms:
            return False
        return bool(self._vad.is_speech(frame, SAMPLE_RATE))
