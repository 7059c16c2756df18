"""Cloned voices: the interfaces, and the built-in converter that turns the stock Piper voice into
someone else's, clause by clause, with signal processing fitted to a 5-10 s reference.

No zero-shot cloning or voice-conversion weights ship in any registry package (see MODELS.md), so
the built-in engine, :class:`PraatVoiceConverter`, works on top of the stock TTS:

1. **Pitch and formants** (Praat "Change gender": PSOLA pitch manipulation plus resampling for the
   formant shift): the clause's median pitch becomes the reference speaker's, its range is scaled
   by the ratio of the two speakers' ranges, and formants move by a fitted ratio.
2. **Spectral envelope, frame by frame** (STFT gains): each frame of the clause is matched by its
   MFCCs (normalised per speaker) to the ``k`` nearest frames of the reference, and its smooth
   envelope (16 cepstral coefficients) is moved towards theirs by a fitted strength (clipped to
   ``max_gain_db``). This carries the speaker's timbre per sound, not just on average.
3. **Static EQ**: what is left of the difference between the reference's long-term spectrum and
   the converted stock voice's, per mel band (clipped to ``max_eq_db``; nothing below 120 Hz).
4. Output gain back to the stock voice's loudness, a soft limiter, and 4 ms fades at the clause's
   edges so clauses converted one by one join without clicks.

A clause is converted as a whole buffer with parameters fixed per voice, so there is no state
between clauses, and the converter is thread-safe. Fitting lives in :mod:`models.voice_fit`.

Plugging in a neural engine (for users who have the weights): implement :class:`VoiceCloner`.
Tone-colour converters that post-process any TTS (OpenVoice's ``ToneColorConverter``, RVC,
kNN-VC) return a :class:`VoiceConverter` from ``load`` and fit in unchanged. Zero-shot TTS engines
(XTTS-v2, CosyVoice, F5-TTS) replace the stock voice instead of converting it: their ``load``
should return an object that also implements :class:`models.tts.TTS` (``synthesize(text)``), and
the TTS stage should call that in place of Piper, with ``convert`` the identity. No such adapter
ships, because none can be tested offline here.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soxr

from models import spectral as sp

ENGINE = "praat-spectral-v1"
PITCH_FLOOR_HZ = 60.0
PITCH_CEILING_HZ = 400.0
MIN_EQ_HZ = 120.0
_PRAAT_LOCK = threading.Lock()  # Praat keeps global state (its random generator too): one manipulation at a time, ~10-20 ms each


class VoiceConverter(Protocol):
    """Turns one clause of stock-voice speech into the cloned voice.

    ``convert`` takes PCM16 mono at ``rate`` and returns PCM16 at the same rate, about the same
    length. It is blocking (run it in a worker thread, after synthesis) and thread-safe.
    """

    def convert(self, pcm: np.ndarray, rate: int) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Clone:
    """What :meth:`VoiceCloner.clone` produced: JSON parameters, the converter, and its fit scores."""

    params: dict[str, Any]
    converter: VoiceConverter
    scores: dict[str, Any]


class VoiceCloner(Protocol):
    """Builds a voice from a reference recording, and loads stored voices.

    ``clone`` is blocking (seconds): ``reference`` is 16 kHz float32 mono speech (already checked
    and normalised), ``stock`` a few clauses of the stock TTS at ``stock_rate`` (PCM16) to fit
    against. Files the voice needs go in ``workdir``; JSON-able parameters go in ``Clone.params``.
    ``load`` rebuilds the converter from those two and must be cheap (milliseconds).
    """

    engine: str

    def clone(self, reference: np.ndarray, stock: list[np.ndarray], stock_rate: int, workdir: Path) -> Clone: ...

    def load(self, params: dict[str, Any], workdir: Path) -> VoiceConverter: ...


@dataclass(frozen=True, slots=True)
class VoiceParams:
    """The fitted, fixed parameters of one :class:`PraatVoiceConverter` voice (stored as JSON)."""

    pitch_median_hz: float  # 0 keeps the stock pitch
    pitch_range: float  # multiplies the pitch excursions around the median
    formant_ratio: float  # > 1 moves formants up (shorter vocal tract)
    envelope_strength: float  # 0 = no per-frame envelope mapping, 1 = all the way to the matched frames
    eq_db: tuple[float, ...]  # per mel band (40), added after the envelope mapping
    output_gain_db: float
    source_mfcc_mean: tuple[float, ...]  # stock voice (after pitch/formant change) MFCC statistics
    source_mfcc_std: tuple[float, ...]
    k: int = 8
    max_gain_db: float = 9.0
    engine: str = ENGINE
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("eq_db", "source_mfcc_mean", "source_mfcc_std"):
            out[key] = [float(v) for v in out[key]]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VoiceParams:
        if data.get("engine", ENGINE) != ENGINE:
            raise ValueError(f"voice engine {data.get('engine')!r} is not {ENGINE!r}")
        values = dict(data)
        for key in ("eq_db", "source_mfcc_mean", "source_mfcc_std"):
            values[key] = tuple(float(v) for v in values[key])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ReferenceFrames:
    """The reference speaker's speech frames: normalised MFCCs to match on, cepstra to copy."""

    mfcc: np.ndarray  # (n, 19) float32, normalised by the reference's own mean and std
    cepstra: np.ndarray  # (n, LIFTER) float32

    @classmethod
    def from_audio(cls, audio16k: np.ndarray) -> ReferenceFrames:
        spec = sp.stft(audio16k)
        mask = sp.speech_frames(spec)
        feats = sp.mfcc(spec[mask])
        norm = (feats - feats.mean(axis=0)) / (feats.std(axis=0) + 1e-6)
        return cls(norm.astype(np.float32), sp.cepstra(spec[mask]))

    def save(self, path: Path) -> None:
        with path.open("wb") as f:
            np.savez_compressed(f, mfcc=self.mfcc.astype(np.float16), cepstra=self.cepstra)

    @classmethod
    def load(cls, path: Path) -> ReferenceFrames:
        with np.load(path) as z:
            return cls(z["mfcc"].astype(np.float32), z["cepstra"].astype(np.float32))


def change_pitch_and_formants(x: np.ndarray, rate: int, formant_ratio: float, median_hz: float, pitch_range: float) -> np.ndarray:
    """Praat "Change gender" on float32 audio; returns the input unchanged where Praat finds no voice."""
    import parselmouth
    from parselmouth.praat import call, run

    if formant_ratio == 1.0 and median_hz == 0.0 and pitch_range == 1.0:
        return x
    snd = parselmouth.Sound(np.asarray(x, dtype=np.float64), float(rate))
    try:
        with _PRAAT_LOCK:
            # PSOLA draws random numbers (for unvoiced stretches): seed it so a clause always sounds the same
            run("random_initializeWithSeedUnsafelyButPredictably (1)")
            try:
                out = call(snd, "Change gender", PITCH_FLOOR_HZ, PITCH_CEILING_HZ, formant_ratio, median_hz, pitch_range, 1.0)
            finally:
                run("random_initializeSafelyAndUnpredictably ()")
    except parselmouth.PraatError:
        return x
    y = np.asarray(out.values[0], dtype=np.float32)
    if len(y) >= len(x):
        return y[: len(x)]
    return np.concatenate([y, np.zeros(len(x) - len(y), np.float32)])


def _smooth_frames(g: np.ndarray, width: int = 5) -> np.ndarray:
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    padded = np.concatenate([np.repeat(g[:1], width // 2, 0), g, np.repeat(g[-1:], width // 2, 0)])
    out = np.zeros_like(g)
    for i, w in enumerate(kernel):
        out += w * padded[i : i + len(g)]
    return out


class PraatVoiceConverter:
    """The built-in converter: pitch/formants (Praat), per-frame envelope mapping and EQ (numpy).

    Build with :meth:`PraatVoiceCloner.load <models.voice_fit.PraatVoiceCloner.load>` or directly from
    :class:`VoiceParams` and :class:`ReferenceFrames`. ``convert`` is thread-safe.
    """

    def __init__(self, params: VoiceParams, frames: ReferenceFrames) -> None:
        self.params = params
        self.frames = frames
        self._eq_bins = sp.bands_to_bins(np.asarray(params.eq_db, np.float32))
        self._src_mu = np.asarray(params.source_mfcc_mean, np.float32)
        self._src_sd = np.asarray(params.source_mfcc_std, np.float32)
        self._ref_sq = (frames.mfcc**2).sum(axis=1)

    def gains_db(self, spec16: np.ndarray) -> np.ndarray:
        """(frames, bins) dB gains for a 16 kHz spectrum (from :func:`models.spectral.stft`) after the pitch step."""
        p = self.params
        gains = np.repeat(self._eq_bins[None, :], len(spec16), axis=0)
        mask = sp.speech_frames(spec16)
        if p.envelope_strength <= 0 or not mask.any() or not len(self.frames.mfcc):
            return gains
        feats = (sp.mfcc(spec16[mask]) - self._src_mu) / self._src_sd
        dist = self._ref_sq[None, :] - 2.0 * feats @ self.frames.mfcc.T
        k = min(p.k, len(self.frames.mfcc))
        nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
        diff = self.frames.cepstra[nearest].mean(axis=1) - sp.cepstra(spec16[mask])
        diff[:, 0] = 0.0  # shape only: loudness stays the clause's own
        dyn = np.zeros_like(gains)
        dyn[mask] = np.clip(sp.envelope_db(diff), -p.max_gain_db, p.max_gain_db) * p.envelope_strength
        return np.asarray(gains + _smooth_frames(dyn), dtype=np.float32)

    def convert_float(self, x: np.ndarray, rate: int) -> np.ndarray:
        """float32 in, float32 out at ``rate`` (>= 16 kHz); the core of :meth:`convert`."""
        p = self.params
        y = change_pitch_and_formants(x, rate, p.formant_ratio, p.pitch_median_hz, p.pitch_range)
        y16 = y if rate == sp.RATE else np.asarray(soxr.resample(y, rate, sp.RATE), np.float32)
        spec16 = sp.stft(y16)
        g16 = self.gains_db(spec16)
        if rate == sp.RATE:
            out = sp.istft(spec16 * (10 ** (g16 / 20)).astype(np.float32), len(y))
        else:
            n_fft = int(2 ** round(np.log2(sp.N_FFT * rate / sp.RATE)))
            hop = n_fft // 4
            spec = sp.stft(y, n_fft, hop)
            out = sp.istft(spec * (10 ** (_regrid(g16, len(spec), rate, n_fft, hop) / 20)).astype(np.float32), len(y), n_fft, hop)
        out *= np.float32(10 ** (p.output_gain_db / 20))
        return sp.fade_edges(sp.soft_limit(out), rate)

    def convert(self, pcm: np.ndarray, rate: int) -> np.ndarray:
        """PCM16 clause of the stock voice at ``rate`` -> PCM16 in this voice, same rate and length."""
        pcm = np.asarray(pcm, dtype=np.int16)
        if len(pcm) < rate // 20:  # under 50 ms: nothing to convert
            return pcm
        x = pcm.astype(np.float32) / 32768.0
        if rate < sp.RATE:
            up = np.asarray(soxr.resample(x, rate, sp.RATE), np.float32)
            y = np.asarray(soxr.resample(self.convert_float(up, sp.RATE), sp.RATE, rate), np.float32)
            y = y[: len(x)] if len(y) >= len(x) else np.concatenate([y, np.zeros(len(x) - len(y), np.float32)])
        else:
            y = self.convert_float(x, rate)
        return np.asarray(np.clip(y * 32767.0, -32768, 32767), dtype=np.int16)


def _regrid(g16: np.ndarray, n_frames: int, rate: int, n_fft: int, hop: int) -> np.ndarray:
    """Map gains from the 16 kHz analysis grid to a native-rate STFT grid (time and frequency)."""
    t16 = (np.arange(len(g16)) * sp.HOP - sp.N_FFT / 2) / sp.RATE
    t = (np.arange(n_frames) * hop - n_fft / 2) / rate
    pos = np.clip(np.interp(t, t16, np.arange(len(t16), dtype=np.float64)), 0, len(g16) - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, len(g16) - 1)
    w = (pos - i0)[:, None].astype(np.float32)
    g_t = g16[i0] * (1 - w) + g16[i1] * w
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    src = np.minimum(freqs / (sp.RATE / sp.N_FFT), sp.N_BINS - 1)  # above 8 kHz: hold the top bin
    j0 = np.floor(src).astype(int)
    j1 = np.minimum(j0 + 1, sp.N_BINS - 1)
    v = (src - j0).astype(np.float32)
    return np.asarray(g_t[:, j0] * (1 - v) + g_t[:, j1] * v, dtype=np.float32)
