"""Audio plumbing shared by the stages: streaming resampling and fixed-size framing."""

from __future__ import annotations

import numpy as np
import soxr


class StreamResampler:
    """Streaming PCM16 resampler (soxr, keeps filter state across chunks so there are no seams).

    Feed int16 chunks with :meth:`process`; call :meth:`flush` at the end of a stream.
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._rs = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.int16)
        if self._rs is None:
            return samples
        return np.asarray(self._rs.resample_chunk(samples, last=last), dtype=np.int16)

    def flush(self) -> np.ndarray:
        return self.process(np.zeros(0, dtype=np.int16), last=True)


def resample(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """One-shot int16 resampling of a whole buffer."""
    if in_rate == out_rate:
        return np.asarray(samples, dtype=np.int16)
    return np.asarray(soxr.resample(np.asarray(samples, dtype=np.int16), in_rate, out_rate, quality="HQ"), dtype=np.int16)


class Framer:
    """Cuts a stream of int16 samples into fixed frames of ``frame_samples``; keeps the remainder."""

    def __init__(self, frame_samples: int) -> None:
        self.frame_samples = frame_samples
        self._buf = np.zeros(0, dtype=np.int16)

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.int16)])
        n = len(buf) // self.frame_samples
        frames = [buf[i * self.frame_samples : (i + 1) * self.frame_samples] for i in range(n)]
        self._buf = buf[n * self.frame_samples :]
        return frames

    def remainder(self) -> np.ndarray:
        rest, self._buf = self._buf, np.zeros(0, dtype=np.int16)
        return rest


def to_float(samples: np.ndarray) -> np.ndarray:
    """int16 -> float32 in [-1, 1)."""
    return np.asarray(samples, dtype=np.float32) / 32768.0


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] -> int16, clipped."""
    return np.asarray(np.clip(samples, -1.0, 1.0) * 32767.0, dtype=np.int16)
