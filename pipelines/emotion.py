"""EmotionStage: live emotion of one caller, an estimate every ~1 s of voiced speech.

Arousal is prosody (pitch level and range, loudness, syllable rate, spectral tilt) scored against
the caller's own baseline; valence and the categories come mostly from the transcript. Both are
fused on the valence-arousal circumplex (``models.emotion.fuse``) and smoothed over time.
Feature extraction and text analysis run through ``offload`` (a worker pool), never on the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.emotion import CATEGORIES, AudioEmotionModel, TextEmotion, TextEmotionResult, expected_valence, fuse
from models.prosody import FEATURE_NAMES, ProsodyExtractor, ProsodyFeatures
from models.vad import FRAME_MS

log = logging.getLogger("parley.emotion")
Offload = Callable[[Callable[[], Any]], Awaitable[Any]]

# Within-speaker spread of 1 s window features (LibriVox reader, read speech): the baseline's prior.
PRIOR_STD: dict[str, float] = {"pitch_st": 1.5, "pitch_range_st": 1.5, "loudness_db": 2.0, "rate_hz": 0.8, "tilt_db": 1.5}
# Weight of each feature's z-score in arousal (all rise with arousal: Scherer 2003, Banse & Scherer 1996).
MIN_STD_FRACTION = 0.5  # a very steady caller's spread is floored at half the prior: no runaway z-scores
AROUSAL_WEIGHTS: dict[str, float] = {
    "loudness_db": 0.25,
    "pitch_st": 0.25,
    "pitch_range_st": 0.20,
    "rate_hz": 0.20,
    "tilt_db": 0.10,
}


@dataclass(frozen=True, slots=True)
class EmotionConfig:
    """Every limit of the estimator, with its default. ``*_s`` are seconds of caller speech."""

    window_ms: int = 1000  # voiced speech per estimate
    context_ms: int = 2000  # audio analysed per estimate: the new window plus the caller's speech before it
    max_gap_ms: int = 300  # pauses up to this long stay inside a window (speaking rate needs them)
    min_window_ms: int = 400  # a shorter tail at the end of an utterance is not analysed
    calibration_s: float = 8.0  # voiced speech that sets the caller's baseline
    adapt_tau_s: float = 120.0  # after calibration the baseline follows the caller this slowly
    smoothing: float = 0.5  # EMA weight of the newest window in the published scores
    text_interval_ms: int = 2000  # partial transcripts are analysed at most this often (finals always)
    text_half_life_s: float = 10.0  # text evidence fades by half over this much audio time
    model_weight: float = 0.5  # how far a deep model moves the scores of the categories it covers
    arousal_gain: float = 0.7  # arousal = tanh(gain * weighted z-sum)
    timeout_s: float = 5.0  # bound on one analysis job


class Baseline:
    """The caller's own running mean and spread of each prosody feature.

    For the first ``calibration_s`` of speech every window joins a running mean (spread blended with
    :data:`PRIOR_STD` so early z-scores stay sane); afterwards it adapts with time constant
    ``adapt_tau_s``, each window winsorised at +-2 spreads so a long outburst shifts it only slowly.
    A caller who is upset from the first word has an upset baseline: arousal is relative.
    """

    def __init__(self, calibration_s: float, adapt_tau_s: float, prior_weight: float = 3.0) -> None:
        self._calibration_s = calibration_s
        self._tau = adapt_tau_s
        self._n0 = prior_weight
        self._n = 0
        self.seconds = 0.0
        self.mean: dict[str, float] = {}
        self._m2: dict[str, float] = dict.fromkeys(FEATURE_NAMES, 0.0)
        self._var: dict[str, float] = {k: PRIOR_STD[k] ** 2 for k in FEATURE_NAMES}

    @property
    def calibrating(self) -> bool:
        return self.seconds < self._calibration_s

    def std(self, name: str) -> float:
        if self.calibrating:  # prior spread, pulled toward the observed one as windows arrive
            var = (self._n0 * PRIOR_STD[name] ** 2 + self._m2[name]) / (self._n0 + max(self._n - 1, 0))
        else:
            var = self._var[name]
        return max(math.sqrt(var), MIN_STD_FRACTION * PRIOR_STD[name])

    def z(self, f: ProsodyFeatures) -> dict[str, float]:
        """z-score of each feature against the baseline so far (0 for the very first window)."""
        if not self.mean:
            return dict.fromkeys(FEATURE_NAMES, 0.0)
        return {k: (getattr(f, k) - self.mean[k]) / self.std(k) for k in FEATURE_NAMES}

    def update(self, f: ProsodyFeatures, seconds: float) -> None:
        if self.calibrating:
            self._n += 1
            for k in FEATURE_NAMES:
                x = getattr(f, k)
                old = self.mean.get(k, x)
                self.mean[k] = old + (x - old) / self._n
                self._m2[k] += (x - old) * (x - self.mean[k])
            var = {k: self.std(k) ** 2 for k in FEATURE_NAMES}
            self.seconds += seconds
            if not self.calibrating:
                self._var = var
            return
        a = min(1.0, seconds / self._tau)
        for k in FEATURE_NAMES:
            sd = self.std(k)
            x = self.mean[k] + max(-2.0, min(2.0, (getattr(f, k) - self.mean[k]) / sd)) * sd
            self.mean[k] += a * (x - self.mean[k])
            self._var[k] += a * ((x - self.mean[k]) ** 2 - self._var[k])
        self.seconds += seconds


def arousal_from_z(z: Mapping[str, float], gain: float = 1.0) -> float:
    """-1..1, 0 = the caller's baseline: tanh of the weighted, clipped (+-3) feature z-scores."""
    raw = sum(w * max(-3.0, min(3.0, z[k])) for k, w in AROUSAL_WEIGHTS.items())
    return math.tanh(gain * raw)


def _r(scores: Mapping[str, float]) -> dict[str, float]:
    return {k: round(float(v), 3) for k, v in scores.items()}


@dataclass(frozen=True, slots=True)
class EmotionEstimate:
    """One live estimate. ``arousal`` and ``valence`` are -1..1; arousal 0 is the caller's own baseline."""

    t_ms: int  # caller-audio time at the end of the window
    scores: dict[str, float]  # the six categories, sum 1, smoothed
    arousal: float  # smoothed
    valence: float  # smoothed
    audio_arousal: float  # this window alone
    features: dict[str, float]  # z-scores against the baseline
    text: TextEmotionResult | None
    text_weight: float  # 0..1, how much the (fading) text counted
    model: dict[str, float] | None  # the deep model's scores, when one is configured
    calibrating: bool  # the baseline is still being learned: arousal is provisional
    compute_ms: float  # CPU time of the worker thread on this window (a deep model's torch threads not counted)
    latency_ms: float  # window complete (its last frame pushed) -> this estimate published, wall clock

    def to_json(self) -> dict[str, Any]:
        """The ``{"type": "emotion", ...}`` message for the call and the supervisor dashboard."""
        source: dict[str, Any] = {
            "audio": {"arousal": round(self.audio_arousal, 3), "z": _r(self.features)},
            "text": None if self.text is None else {"weight": round(self.text_weight, 3), **self.text.to_json()},
        }
        if self.model is not None:
            source["model"] = _r(self.model)
        return {
            "type": "emotion",
            "t_ms": self.t_ms,
            "scores": _r(self.scores),
            "arousal": round(self.arousal, 3),
            "valence": round(self.valence, 3),
            "calibrating": self.calibrating,
            "source": source,
        }


@dataclass(frozen=True, slots=True)
class UtteranceEmotion:
    """Summary of one caller utterance, for its final transcript. Unsmoothed: this utterance only."""

    utterance: int
    t_ms: int
    windows: int
    scores: dict[str, float]
    arousal: float  # mean window arousal, 0 when no window was long enough
    arousal_peak: float
    valence: float
    text: TextEmotionResult | None
    model: dict[str, float] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "emotion.utterance",
            "utterance": self.utterance,
            "t_ms": self.t_ms,
            "windows": self.windows,
            "scores": _r(self.scores),
            "arousal": round(self.arousal, 3),
            "arousal_peak": round(self.arousal_peak, 3),
            "valence": round(self.valence, 3),
            "source": {
                "text": None if self.text is None else self.text.to_json(),
                **({"model": _r(self.model)} if self.model else {}),
            },
        }


@dataclass(slots=True)
class _Utterance:
    arousal: list[float] = field(default_factory=list)
    model: list[dict[str, float]] = field(default_factory=list)
    text: TextEmotionResult | None = None


@dataclass(slots=True)
class _Window:
    audio: np.ndarray
    t_ms: int
    voiced_ms: int
    utt: _Utterance
    cut_at: float  # perf_counter when the window was complete


class EmotionStage:
    """One per call. Feed every 16 kHz 20 ms int16 frame to :meth:`push` with the VAD's verdict, and
    transcripts to :meth:`on_text`; at the end of each caller turn await :meth:`utterance_summary`.

    Every ``window_ms`` of voiced speech the newest ``context_ms`` of the caller's speech is analysed
    through ``offload`` (e.g. ``lambda fn: hub.aux_pool.run(2, fn)``, below Smart Turn, the policy
    and TTS; ~5-15 ms of CPU a window, ~15-30 ms a transcript), and ``on_estimate`` is called on the
    event loop with the new :class:`EmotionEstimate` (also kept in :attr:`latest`). At most one
    window waits behind the one being analysed; older ones are dropped and counted in
    :attr:`dropped_windows`. A failed analysis is logged, counted in :attr:`failures` and skipped:
    emotion degrades, the call goes on. Call :meth:`aclose` when the call ends.
    """

    def __init__(
        self,
        prosody: ProsodyExtractor,
        offload: Offload,
        *,
        text: TextEmotion | None = None,
        model: AudioEmotionModel | None = None,
        on_estimate: Callable[[EmotionEstimate], None] | None = None,
        config: EmotionConfig | None = None,
    ) -> None:
        self.config = cfg = config or EmotionConfig()
        self._prosody = prosody
        self._offload = offload
        self._text_model = text
        self._model = model
        self._on_estimate = on_estimate
        self.baseline = Baseline(cfg.calibration_s, cfg.adapt_tau_s)
        self.t_ms = 0
        self._frames: list[np.ndarray] = []
        self._gap: list[np.ndarray] = []
        self._voiced_ms = 0
        self._windows: list[_Window] = []
        self._context = np.zeros(0, dtype=np.int16)  # the caller's most recent windowed speech
        self._audio_task: asyncio.Task[None] | None = None
        self._text_jobs: dict[bool, tuple[str, str, int, _Utterance]] = {}  # final?, one slot each
        self._text_task: asyncio.Task[None] | None = None
        self._text: tuple[TextEmotionResult, int] | None = None  # latest result, t_ms it arrived
        self._last_partial: tuple[str, int] = ("", -(10**9))  # text, t_ms of the last partial analysed
        self._utt = _Utterance()
        self._utt_index = 0
        self._smoothed: tuple[dict[str, float], float, float] | None = None
        self.latest: EmotionEstimate | None = None
        self.dropped_windows = 0
        self.failures = 0

    # ---- audio ----------------------------------------------------------------------------

    def push(self, frame: np.ndarray, voiced: bool) -> None:
        """One 20 ms frame. Cheap: a window is cut and handed to a task every ``window_ms`` voiced."""
        self.t_ms += FRAME_MS
        if voiced:
            self._frames.extend(self._gap)
            self._gap.clear()
            self._frames.append(frame)
            self._voiced_ms += FRAME_MS
            if self._voiced_ms >= self.config.window_ms:
                self._cut()
        elif self._frames and len(self._gap) * FRAME_MS < self.config.max_gap_ms:
            self._gap.append(frame)  # longer pauses are truncated to max_gap_ms

    def _cut(self) -> None:
        if len(self._windows) >= 1:
            self._windows.pop(0)
            self.dropped_windows += 1
        new = np.concatenate(self._frames)
        keep = max(0, self.config.context_ms * 16 - len(new))  # 16 samples per ms
        audio = np.concatenate([self._context[len(self._context) - keep :] if keep else self._context[:0], new])
        self._context = audio
        self._windows.append(_Window(audio, self.t_ms, self._voiced_ms, self._utt, time.perf_counter()))
        self._frames, self._gap, self._voiced_ms = [], [], 0
        if self._audio_task is None or self._audio_task.done():
            self._audio_task = asyncio.create_task(self._drain_audio())

    def _analyze(self, audio: np.ndarray) -> tuple[ProsodyFeatures | None, dict[str, float] | None, float]:
        """Worker thread: prosody (and the deep model) for one window, with the CPU time it took."""
        t0 = time.thread_time()
        features = self._prosody.features(audio)
        model = self._model.classify(audio.astype(np.float32) / 32768.0) if self._model is not None else None
        return features, model, (time.thread_time() - t0) * 1000

    async def _drain_audio(self) -> None:
        while self._windows:
            w = self._windows.pop(0)
            try:
                features, model, ms = await asyncio.wait_for(
                    self._offload(functools.partial(self._analyze, w.audio)), self.config.timeout_s
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                log.warning("emotion window failed: %r", exc)
                continue
            self._publish(w, features, model, ms)

    def _text_evidence(self, t_ms: int) -> tuple[TextEmotionResult | None, float]:
        if self._text is None:
            return None, 0.0
        result, at = self._text
        return result, 0.5 ** (max(0, t_ms - at) / (self.config.text_half_life_s * 1000))

    def _publish(self, w: _Window, features: ProsodyFeatures | None, model: dict[str, float] | None, ms: float) -> None:
        if features is None and model is None:
            return  # too little voiced audio to say anything
        calibrating = self.baseline.calibrating
        z: dict[str, float] = {}
        arousal: float | None = None
        if features is not None:
            z = self.baseline.z(features)
            arousal = arousal_from_z(z, self.config.arousal_gain)
            self.baseline.update(features, w.voiced_ms / 1000)
            w.utt.arousal.append(arousal)
        if model is not None:
            w.utt.model.append(model)
        text, text_weight = self._text_evidence(w.t_ms)
        scores = fuse(arousal, text, text_weight, model, self.config.model_weight)
        valence = _valence(text, text_weight, model, self.config.model_weight)
        a = self.config.smoothing
        if self._smoothed is None:
            self._smoothed = (scores, arousal or 0.0, valence)
        else:
            prev, prev_a, prev_v = self._smoothed
            self._smoothed = (
                {c: a * scores[c] + (1 - a) * prev[c] for c in CATEGORIES},
                prev_a if arousal is None else a * arousal + (1 - a) * prev_a,
                a * valence + (1 - a) * prev_v,
            )
        s_scores, s_arousal, s_valence = self._smoothed
        latency = (time.perf_counter() - w.cut_at) * 1000
        est = EmotionEstimate(
            w.t_ms, s_scores, s_arousal, s_valence, arousal or 0.0, z, text, text_weight, model, calibrating, ms, latency
        )
        self.latest = est
        if self._on_estimate is not None:
            self._on_estimate(est)

    # ---- text -----------------------------------------------------------------------------

    def on_text(self, text: str, language: str, final: bool) -> None:
        """A partial or final transcript of the current utterance; analysed in the background.

        Partials are analysed at most every ``text_interval_ms`` (one embedding each, ~10-25 ms);
        only the newest waiting partial is kept, and a final is never displaced by a later partial.
        """
        if self._text_model is None or not text.strip():
            return
        if not final:
            last_text, last_ms = self._last_partial
            if text == last_text or self.t_ms - last_ms < self.config.text_interval_ms:
                return
            self._last_partial = (text, self.t_ms)
        self._text_jobs[final] = (text, language, self.t_ms, self._utt)
        if self._text_task is None or self._text_task.done():
            self._text_task = asyncio.create_task(self._drain_text())

    async def _drain_text(self) -> None:
        assert self._text_model is not None
        while self._text_jobs:
            final = True in self._text_jobs
            text, language, t_ms, utt = self._text_jobs.pop(final)
            try:
                result: TextEmotionResult = await asyncio.wait_for(
                    self._offload(functools.partial(self._text_model.analyze, text, language)), self.config.timeout_s
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                log.warning("emotion text analysis failed: %r", exc)
                continue
            self._text = (result, t_ms)
            if final:
                utt.text = result

    # ---- utterances -----------------------------------------------------------------------

    async def utterance_summary(self) -> UtteranceEmotion:
        """Close the current utterance and summarise it (its windows and its final transcript).

        Call it after :meth:`on_text` with ``final=True`` (or without, if the turn had no words).
        The voiced tail since the last window is analysed when it is at least ``min_window_ms``.
        Waits for this utterance's pending analysis, at most ``timeout_s``; never cancels it.
        """
        if self._voiced_ms >= self.config.min_window_ms:
            self._cut()
        self._frames, self._gap, self._voiced_ms = [], [], 0
        utt, self._utt = self._utt, _Utterance()
        self._utt_index += 1
        await self.flush()
        arousal = sum(utt.arousal) / len(utt.arousal) if utt.arousal else None
        model = {c: sum(m.get(c, 0.0) for m in utt.model) / len(utt.model) for c in utt.model[0]} if utt.model else None
        scores = fuse(arousal, utt.text, 1.0, model, self.config.model_weight)
        return UtteranceEmotion(
            utterance=self._utt_index,
            t_ms=self.t_ms,
            windows=len(utt.arousal),
            scores=scores,
            arousal=arousal or 0.0,
            arousal_peak=max(utt.arousal, default=0.0),
            valence=_valence(utt.text, 1.0, model, self.config.model_weight),
            text=utt.text,
            model=model,
        )

    @property
    def pending(self) -> bool:
        """Analysis is queued or running."""
        return any(t is not None and not t.done() for t in (self._audio_task, self._text_task))

    async def flush(self) -> None:
        """Wait until every window cut and every transcript given so far is analysed (at most ``timeout_s``)."""
        pending = [t for t in (self._audio_task, self._text_task) if t is not None and not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.config.timeout_s)

    async def aclose(self) -> None:
        """Cancel pending analysis and wait for it to stop."""
        tasks = [t for t in (self._audio_task, self._text_task) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


def _valence(text: TextEmotionResult | None, text_weight: float, model: Mapping[str, float] | None, model_weight: float) -> float:
    """Valence from the evidence that carries it: the transcript (fading with ``text_weight``), then a deep
    model's categories for the rest. Prosody alone says nothing about valence: with neither, 0."""
    v_text = text.valence if text is not None else 0.0
    w_text = text_weight if text is not None else 0.0
    v_model = expected_valence(model) * model_weight if model else 0.0
    return w_text * v_text + (1 - w_text) * v_model
