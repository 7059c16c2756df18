"""Prosody features of one window of speech, in numpy: pitch, loudness, speaking rate, spectral tilt.

These are the acoustic inputs of the emotion estimate (arousal). They are absolute measurements;
only their change against the caller's own baseline means anything (``pipelines/emotion.py``).
Cost: ~3-6 ms of CPU per second of 16 kHz audio (``python -m bench.emotion``), no JIT,
no model weights. librosa's ``pyin`` costs ~100 ms per second and ``yin`` needs a ~25 s numba
compile at first use, so the pitch tracker here is a small vectorised YIN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16000
HOP = 160  # 10 ms analysis hop
YIN_WINDOW = 400  # 25 ms integration window
F0_MIN = 60.0
F0_MAX = 420.0
TAU_MIN = int(SAMPLE_RATE / F0_MAX)
TAU_MAX = int(SAMPLE_RATE / F0_MIN) + 1
YIN_THRESHOLD = 0.15  # first CMNDF dip below this is the period (de Cheveigné & Kawahara 2002)
VOICED_APERIODICITY = 0.3  # a frame whose best CMNDF dip is above this is unvoiced
ACTIVE_DB = 30.0  # frames more than this below the window's loudest frame are silence
SILENCE_DB = -60.0  # and so is anything below this level (full scale = 0 dB)
SYLLABLE_DIP_DB = 2.0  # an energy peak counts as a syllable nucleus if dips of this surround it
FFT_N = 1024


@dataclass(frozen=True, slots=True)
class ProsodyFeatures:
    """Absolute prosody of one window. Semitones are relative to 100 Hz; dB relative to full scale."""

    pitch_st: float  # median f0 of voiced frames
    pitch_range_st: float  # 10th-90th percentile spread of f0
    loudness_db: float  # mean RMS level of voiced frames
    rate_hz: float  # syllable nuclei per second of active (non-silent) audio
    tilt_db: float  # energy 1-4 kHz over 0-1 kHz of voiced frames (flatter = more vocal effort)
    voiced_ratio: float  # voiced frames / active frames
    active_s: float  # seconds of non-silent audio analysed

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in asdict(self).items()}


FEATURE_NAMES: tuple[str, ...] = ("pitch_st", "pitch_range_st", "loudness_db", "rate_hz", "tilt_db")


class ProsodyExtractor(Protocol):
    """Measures one window of 16 kHz mono speech. Blocking and CPU-bound: call it in a worker thread."""

    def features(self, audio: np.ndarray) -> ProsodyFeatures | None:
        """Features of ``audio`` (int16 or float in [-1, 1]); ``None`` when it holds too little voiced speech."""
        ...


def _frames(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    n = 1 + (len(x) - length) // hop if len(x) >= length else 0
    if n <= 0:
        return np.zeros((0, length), dtype=x.dtype)
    return np.lib.stride_tricks.sliding_window_view(x, length)[::hop][:n]


def yin_track(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(f0 Hz, aperiodicity) per 10 ms frame of float audio, vectorised YIN with parabolic refinement.

    f0 is ``nan`` where the frame is not periodic enough to be voiced.
    """
    frames = _frames(x, YIN_WINDOW + TAU_MAX, HOP).astype(np.float64)
    if not len(frames):
        return np.zeros(0), np.zeros(0)
    spec_full = np.fft.rfft(frames, FFT_N)
    spec_head = np.fft.rfft(frames[:, :YIN_WINDOW], FFT_N)
    r = np.fft.irfft(np.conj(spec_head) * spec_full, FFT_N)[:, : TAU_MAX + 1]  # r[tau] = sum x_j x_{j+tau}
    sq = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames**2, axis=1)], axis=1)
    taus = np.arange(TAU_MAX + 1)
    energy_lag = sq[:, taus + YIN_WINDOW] - sq[:, taus]  # sum_{j=tau}^{tau+W-1} x_j^2
    d = np.maximum(energy_lag[:, :1] + energy_lag - 2.0 * r, 0.0)
    cum = np.cumsum(d[:, 1:], axis=1)
    cmndf = np.ones_like(d)
    cmndf[:, 1:] = d[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)
    band = cmndf[:, TAU_MIN:]
    below = band < YIN_THRESHOLD
    first = np.where(below.any(axis=1), below.argmax(axis=1), band.argmin(axis=1))
    # walk down from the first dip to its local minimum
    idx = first.copy()
    rows = np.arange(len(band))
    for _ in range(TAU_MAX):
        nxt = np.minimum(idx + 1, band.shape[1] - 1)
        step = band[rows, nxt] < band[rows, idx]
        if not step.any():
            break
        idx = np.where(step, nxt, idx)
    tau = (idx + TAU_MIN).astype(np.float64)
    lo = np.clip(idx - 1, 0, band.shape[1] - 1)
    hi = np.clip(idx + 1, 0, band.shape[1] - 1)
    a, b, c = band[rows, lo], band[rows, idx], band[rows, hi]
    denom = a - 2 * b + c
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    tau = tau + np.clip(shift, -1, 1)
    aper = band[rows, idx]
    f0 = np.where(aper < VOICED_APERIODICITY, SAMPLE_RATE / tau, np.nan)
    return f0, aper


def _syllable_peaks(env_db: np.ndarray, active: np.ndarray) -> int:
    """Energy peaks separated by dips of at least ``SYLLABLE_DIP_DB`` on both sides (syllable nuclei)."""
    if len(env_db) < 3:
        return 0
    smooth = np.convolve(env_db, np.ones(3) / 3, mode="same")  # 30 ms: wider merges syllables of fast speech
    inner = smooth[1:-1]
    maxima = np.nonzero((inner > smooth[:-2]) & (inner >= smooth[2:]) & active[1:-1])[0] + 1
    peaks: list[int] = []
    for p in maxima:
        if not peaks:
            peaks.append(int(p))
            continue
        dip = float(smooth[peaks[-1] : p + 1].min())
        if smooth[peaks[-1]] - dip >= SYLLABLE_DIP_DB and smooth[p] - dip >= SYLLABLE_DIP_DB:
            peaks.append(int(p))
        elif smooth[p] > smooth[peaks[-1]]:  # no real dip: the same nucleus, keep the higher point
            peaks[-1] = int(p)
    return len(peaks)


class NumpyProsody:
    """Pitch (YIN), loudness, syllable rate and spectral tilt in numpy; thread-safe (no state)."""

    def __init__(self, min_voiced_frames: int = 10) -> None:
        self._min_voiced = min_voiced_frames
        freqs = np.fft.rfftfreq(512, 1 / SAMPLE_RATE)
        self._low = (freqs >= 50) & (freqs < 1000)
        self._high = (freqs >= 1000) & (freqs < 4000)
        self._hann = np.hanning(YIN_WINDOW)

    def features(self, audio: np.ndarray) -> ProsodyFeatures | None:
        x = np.asarray(audio)
        x = x.astype(np.float64) / 32768.0 if x.dtype == np.int16 else x.astype(np.float64)
        if len(x) < YIN_WINDOW + TAU_MAX:
            return None
        f0, _ = yin_track(x)
        frames = _frames(x, YIN_WINDOW, HOP)[: len(f0)]
        level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
        active = (level > level.max() - ACTIVE_DB) & (level > SILENCE_DB)
        voiced = active & np.isfinite(f0)
        if int(voiced.sum()) < self._min_voiced:
            return None
        st = 12 * np.log2(f0[voiced] / 100.0)
        st = st[np.abs(st - np.median(st)) < 9]  # drop octave errors (> 3/4 octave from the median)
        power = np.abs(np.fft.rfft(frames[voiced] * self._hann, 512)) ** 2
        tilt = 10 * np.log10((power[:, self._high].sum() + 1e-12) / (power[:, self._low].sum() + 1e-12))
        active_s = float(active.sum()) * HOP / SAMPLE_RATE
        return ProsodyFeatures(
            pitch_st=float(np.median(st)),
            pitch_range_st=float(np.percentile(st, 90) - np.percentile(st, 10)),
            loudness_db=float(10 * np.log10(np.mean(10 ** (level[voiced] / 10)))),
            rate_hz=_syllable_peaks(level, active) / max(active_s, 1e-3),
            tilt_db=float(tilt),
            voiced_ratio=float(voiced.sum() / max(active.sum(), 1)),
            active_s=active_s,
        )
