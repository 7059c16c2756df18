"""Clause splitting (pure) and the Piper voice behind TTSStage (real model)."""

from __future__ import annotations

import numpy as np

from models import manifest
from models.device import select_device
from models.tts import PiperTTS
from pipelines.tts import ClauseBuffer, TTSStage, split_clauses
from pipelines.workers import PriorityWorkers


def test_split_sentences_and_long_clauses() -> None:
    assert split_clauses("Sure. What is the order number?") == ["Sure.", "What is the order number?"]
    long = "I can see that your order left our warehouse yesterday, it is with the courier now, and it should arrive by Friday afternoon at the latest."
    parts = split_clauses(long, max_chars=60)
    assert len(parts) >= 3 and all(len(p) <= 60 for p in parts)
    assert " ".join(parts).split() == long.split()


def test_split_merges_tiny_fragments_and_handles_chinese() -> None:
    assert split_clauses("Hi, there. Okay.") == ["Hi, there.", "Okay."]
    assert split_clauses("您好。请问有什么可以帮您？") == ["您好。", "请问有什么可以帮您？"]


def test_clause_buffer_releases_clauses_as_they_complete() -> None:
    buf = ClauseBuffer()
    assert buf.push("Thanks for") == []
    assert buf.push(" waiting. Your order") == ["Thanks for waiting."]
    assert buf.push(" ships today") == []
    assert buf.flush() == ["Your order ships today"]


def test_clause_buffer_can_release_a_long_first_clause_at_a_comma() -> None:
    buf = ClauseBuffer(eager_chars=16)
    assert buf.push("Sure, I") == []  # too short to stand alone
    assert buf.push(" can help with that, and") == ["Sure, I can help with that,"]
    assert buf.push(" more, later. Then, this") == ["and more, later."]  # only the first clause is eager
    assert buf.flush() == ["Then, this"]


async def test_tts_stage_resamples_and_caches() -> None:
    onnx, cfg = manifest.piper_joe()
    tts = PiperTTS(onnx, cfg, select_device("cpu"))
    pool = PriorityWorkers(1, "tts-test")
    try:
        cache: dict[tuple[str, int], np.ndarray] = {}
        stage = TTSStage(tts, pool, 8000, cache)
        pcm = await stage.speak("Hello there.", cache=True)
        # Piper's duration is stochastic (noise_w); "Hello there." is about 0.6-1.0 s at any rate
        assert 0.4 < len(pcm) / 8000 < 1.4
        native = tts.synthesize("Hello there.")
        assert 0.4 < len(native) / tts.sample_rate < 1.4
        assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 300  # audible speech, not silence
        assert ("Hello there.", 8000) in cache
        assert await stage.speak("Hello there.") is cache[("Hello there.", 8000)]
    finally:
        pool.close()
