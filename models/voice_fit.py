"""Fitting a :class:`~models.cloning.PraatVoiceConverter` voice to a reference recording.

The reference is split in two at a pause near its middle. Every candidate (formant ratio x
envelope strength; pitch comes from the reference directly) is fitted on one half and scored by
the d-vector similarity of the converted stock clauses to the *other* half, both ways round, so
the choice rewards sounding like the speaker, not copying one recording. The best candidate is refitted on
the whole reference. If a ``judge`` (word error rate of converted stock clauses, e.g. faster-whisper
tiny.en) is given, a candidate whose WER exceeds the stock voice's by more than
``max_wer_increase`` is passed over for the next best, so the voice stays intelligible.

Cost on a busy 2-core CPU: ~0.5 s per candidate (two fits, two embeddings), ~8-10 s per voice, plus ~1 s
per judged candidate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from models import spectral as sp
from models.cloning import ENGINE, MIN_EQ_HZ, Clone, PraatVoiceConverter, ReferenceFrames, VoiceParams, change_pitch_and_formants
from models.voice_embedding import SpeakerEncoder, similarity

log = logging.getLogger("parley.voices")

FRAMES_FILE = "frames.npz"
FORMANTS_NEAR = (0.95, 1.0, 1.05, 1.1)  # reference pitch within 1.5x of the stock voice's
FORMANTS_HIGHER = (
    1.05,
    1.1,
    1.15,
    1.2,
)  # reference pitch 1.5x the stock voice's or more (e.g. a male stock voice, female speaker)
STRENGTHS = (0.0, 0.5, 1.0, 1.5)  # 1.5 overshoots the matched frames: more like the speaker, still intelligible on the bench
PITCH_RANGE_LIMITS = (0.6, 1.6)
JUDGED_CANDIDATES = 3

Convert = Callable[[np.ndarray, int], np.ndarray]
# word error rate of the judge's own sentences, spoken by the stock voice (None) or converted by ``convert``
Judge = Callable[[Convert | None], float]


@dataclass(frozen=True, slots=True)
class _Candidate:
    formant_ratio: float
    strength: float
    score: float


def pitch_stats(x: np.ndarray, rate: int) -> tuple[float, float]:
    """(median f0 in Hz, spread in semitones) of the voiced frames; (0, 0) when nothing is voiced."""
    import parselmouth

    snd = parselmouth.Sound(np.asarray(x, dtype=np.float64), float(rate))
    f0 = snd.to_pitch(0.01, 60.0, 400.0).selected_array["frequency"]
    f0 = f0[f0 > 0]
    if len(f0) < 10:
        return 0.0, 0.0
    med = float(np.median(f0))
    return med, float(np.std(12 * np.log2(f0 / med)))


def split_at_pause(x: np.ndarray, rate: int = sp.RATE) -> tuple[np.ndarray, np.ndarray]:
    """Two halves of a recording, cut at the quietest 50 ms between 35 % and 65 % of its length."""
    n = rate // 20
    lo, hi = int(len(x) * 0.35) // n, int(len(x) * 0.65) // n
    frames = np.asarray(x[: len(x) // n * n], np.float64).reshape(-1, n)
    if hi <= lo:
        cut = len(x) // 2
    else:
        cut = (lo + int(np.argmin((frames[lo:hi] ** 2).mean(axis=1)))) * n + n // 2
    return x[:cut], x[cut:]


def _band_centres() -> np.ndarray:
    return np.asarray(np.argmax(sp.mel_filters(), axis=1) * sp.RATE / sp.N_FFT, dtype=np.float64)


def fit_eq(ref16: np.ndarray, specs: list[np.ndarray], max_eq_db: float = 9.0) -> np.ndarray:
    """Per-mel-band dB gain that moves the converted clauses' long-term spectrum to the reference's."""
    ref_spec = sp.stft(ref16)
    ref = sp.mel_ltas_db(ref_spec, sp.speech_frames(ref_spec))
    allspec = np.concatenate(specs)
    out = sp.mel_ltas_db(allspec, np.concatenate([sp.speech_frames(s) for s in specs]))
    g = ref - out
    centres = _band_centres()
    first = int(np.argmax(centres >= MIN_EQ_HZ))
    g[:first] = g[first]
    g -= np.median(g)
    return np.asarray(np.clip(g, -max_eq_db, max_eq_db), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class _Shifted:
    """Stock clauses after the pitch/formant step, analysed at 16 kHz (shared by a ratio's candidates)."""

    ratio: float
    specs: list[np.ndarray]
    lengths: list[int]
    mfcc_mean: tuple[float, ...]
    mfcc_std: tuple[float, ...]


class PraatVoiceCloner:
    """Fits and loads :class:`PraatVoiceConverter` voices (implements :class:`models.cloning.VoiceCloner`)."""

    engine = ENGINE

    def __init__(self, encoder: SpeakerEncoder, judge: Judge | None = None, max_wer_increase: float = 0.03) -> None:
        self.encoder = encoder
        self.judge = judge
        self.max_wer_increase = max_wer_increase

    def load(self, params: dict[str, Any], workdir: Path) -> PraatVoiceConverter:
        """Rebuild a stored voice (reads ``workdir/frames.npz``; a few milliseconds)."""
        return PraatVoiceConverter(VoiceParams.from_json(params), ReferenceFrames.load(workdir / FRAMES_FILE))

    def clone(self, reference: np.ndarray, stock: list[np.ndarray], stock_rate: int, workdir: Path) -> Clone:
        """Fit a voice to 16 kHz ``reference`` speech; ``stock`` are PCM16 stock-TTS clauses at ``stock_rate``."""
        t0 = time.perf_counter()
        stock_f = [np.asarray(c, np.float32) / 32768.0 for c in stock]
        stock16 = np.concatenate([np.asarray(soxr.resample(c, stock_rate, sp.RATE), np.float32) for c in stock_f])
        ref_med, ref_spread = pitch_stats(reference, sp.RATE)
        src_med, src_spread = pitch_stats(stock16, sp.RATE)
        spread = float(np.clip(ref_spread / src_spread, *PITCH_RANGE_LIMITS)) if ref_spread and src_spread else 1.0
        grid = FORMANTS_HIGHER if src_med and ref_med > 1.5 * src_med else FORMANTS_NEAR
        target_db = sp.active_rms_db(stock16, sp.RATE)
        halves = split_at_pause(reference)
        embs = [self.encoder.embed(h) for h in halves]
        halves_frames = [ReferenceFrames.from_audio(h) for h in halves]
        candidates: list[_Candidate] = []
        shifted: dict[float, _Shifted] = {}
        for ratio in grid:
            shifted[ratio] = _shift(stock_f, stock_rate, ratio, ref_med, spread)
            for strength in STRENGTHS:
                # fitted on one half, scored on the other, both ways
                score = 0.0
                for fit_i, score_i in ((0, 1), (1, 0)):
                    _, audio = _fit(halves_frames[fit_i], halves[fit_i], shifted[ratio], ref_med, spread, strength, target_db)
                    score += similarity(self.encoder.embed(audio), embs[score_i]) / 2
                candidates.append(_Candidate(ratio, strength, score))
        ranked = sorted(candidates, key=lambda c: -c.score)
        stock_emb = self.encoder.embed(stock16)
        stock_score = sum(similarity(stock_emb, e) for e in embs) / 2
        frames = ReferenceFrames.from_audio(reference)

        def refit(c: _Candidate) -> PraatVoiceConverter:
            return _fit(frames, reference, shifted[c.formant_ratio], ref_med, spread, c.strength, target_db)[0]

        chosen, converter, judged = self._choose(ranked, refit)
        workdir.mkdir(parents=True, exist_ok=True)
        frames.save(workdir / FRAMES_FILE)
        scores: dict[str, Any] = {
            "held_out_similarity": round(chosen.score, 4),
            "stock_held_out_similarity": round(stock_score, 4),
            "reference_pitch_hz": round(ref_med, 1),
            "stock_pitch_hz": round(src_med, 1),
            "candidates": [
                {"formant_ratio": c.formant_ratio, "envelope_strength": c.strength, "score": round(c.score, 4)} for c in ranked
            ],
            "fit_s": round(time.perf_counter() - t0, 2),
            **judged,
        }
        log.info(
            "voice fitted: formants x%.2f, envelope %.1f, held-out similarity %.3f (stock %.3f) in %.1f s",
            chosen.formant_ratio,
            chosen.strength,
            chosen.score,
            stock_score,
            scores["fit_s"],
        )
        return Clone(converter.params.to_json(), converter, scores)

    def _choose(
        self, ranked: list[_Candidate], refit: Callable[[_Candidate], PraatVoiceConverter]
    ) -> tuple[_Candidate, PraatVoiceConverter, dict[str, Any]]:
        """The best candidate, refitted on the whole reference, that the judge (if any) finds intelligible."""
        if self.judge is None:
            return ranked[0], refit(ranked[0]), {}
        stock_wer = self.judge(None)
        tried: list[dict[str, float]] = []
        # the mildest change (pitch and EQ only, formants kept) is the fallback when no candidate passes
        mild = min(ranked, key=lambda c: (c.strength, abs(c.formant_ratio - 1.0)))
        for cand in [*ranked[:JUDGED_CANDIDATES], mild]:
            conv = refit(cand)
            wer = self.judge(conv.convert)
            tried.append({"formant_ratio": cand.formant_ratio, "envelope_strength": cand.strength, "wer": round(wer, 4)})
            if wer <= stock_wer + self.max_wer_increase or cand is mild:
                return cand, conv, {"wer": round(wer, 4), "stock_wer": round(stock_wer, 4), "judged": tried}
        raise AssertionError("unreachable: the mild candidate always returns")


def _shift(stock: list[np.ndarray], rate: int, ratio: float, median: float, spread: float) -> _Shifted:
    """Pitch/formant step on every stock clause, then 16 kHz spectra and the MFCC statistics of their speech."""
    specs, lengths = [], []
    for c in stock:
        y16 = np.asarray(soxr.resample(change_pitch_and_formants(c, rate, ratio, median, spread), rate, sp.RATE), np.float32)
        specs.append(sp.stft(y16))
        lengths.append(len(y16))
    allspec = np.concatenate(specs)
    feats = sp.mfcc(allspec[sp.speech_frames(allspec)])
    mean = tuple(float(v) for v in feats.mean(axis=0))
    std = tuple(float(v) + 1e-6 for v in feats.std(axis=0))
    return _Shifted(ratio, specs, lengths, mean, std)


def _render(conv: PraatVoiceConverter, shifted: _Shifted, gains: list[np.ndarray] | None = None) -> np.ndarray:
    """The spectral steps of ``conv`` on already pitch-shifted clauses: 16 kHz audio, joined."""
    outs = []
    for i, (spec, n) in enumerate(zip(shifted.specs, shifted.lengths, strict=True)):
        g = conv.gains_db(spec) if gains is None else gains[i]
        y = sp.istft(spec * (10 ** (g / 20)).astype(np.float32), n) * np.float32(10 ** (conv.params.output_gain_db / 20))
        outs.append(sp.fade_edges(sp.soft_limit(y), sp.RATE))
    return np.concatenate(outs)


def _fit(
    frames: ReferenceFrames, ref16: np.ndarray, shifted: _Shifted, median: float, spread: float, strength: float, target_db: float
) -> tuple[PraatVoiceConverter, np.ndarray]:
    """Envelope mapping, then the EQ for what remains, then the output gain; returns the converter and its 16 kHz output."""
    base = VoiceParams(
        pitch_median_hz=round(median, 2),
        pitch_range=round(spread, 3),
        formant_ratio=shifted.ratio,
        envelope_strength=strength,
        eq_db=(0.0,) * sp.N_MELS,
        output_gain_db=0.0,
        source_mfcc_mean=shifted.mfcc_mean,
        source_mfcc_std=shifted.mfcc_std,
    )
    dyn = [PraatVoiceConverter(base, frames).gains_db(s) for s in shifted.specs]
    eq = fit_eq(ref16, [s * (10 ** (g / 20)).astype(np.float32) for s, g in zip(shifted.specs, dyn, strict=True)])
    eq_bins = sp.bands_to_bins(eq)
    gains = [g + eq_bins for g in dyn]
    conv = PraatVoiceConverter(_replace(base, eq_db=tuple(round(float(v), 3) for v in eq)), frames)
    gain = target_db - sp.active_rms_db(_render(conv, shifted, gains), sp.RATE)
    conv = PraatVoiceConverter(_replace(conv.params, output_gain_db=round(gain, 2)), frames)
    return conv, _render(conv, shifted, gains)


def _replace(p: VoiceParams, **changes: Any) -> VoiceParams:
    import dataclasses

    return dataclasses.replace(p, **changes)
