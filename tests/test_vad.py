"""VADStage on real speech (LibriVox) surrounded by generated silence and noise."""

from __future__ import annotations

import numpy as np

from bench.caller import librivox_clips, load_pcm
from models.vad import FRAME_SAMPLES, WebRtcVAD
from pipelines.audio import Framer
from pipelines.vad import VADStage


def run(stage: VADStage, pcm: np.ndarray) -> list[int]:
    onsets = []
    for frame in Framer(FRAME_SAMPLES).push(pcm):
        r = stage.process(frame)
        if r.onset_ms is not None:
            onsets.append(r.onset_ms)
    return onsets


def test_onset_near_real_speech_start() -> None:
    wav, _ = librivox_clips()[1]
    speech = load_pcm(wav, 16000)
    lead = np.zeros(16000, dtype=np.int16)
    stage = VADStage(WebRtcVAD(3), start_ms=120)
    onsets = run(stage, np.concatenate([lead, speech]))
    assert onsets, "speech was not detected"
    # the clip itself starts with a little silence; onset lands within its first half second
    assert 1000 <= onsets[0] <= 1600
    assert stage.voiced_ms_total > 1000


def test_silence_and_faint_noise_are_not_speech() -> None:
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(16000 * 2) * 60).astype(np.int16)  # ~ -55 dBFS hiss
    stage = VADStage(WebRtcVAD(3))
    assert run(stage, np.concatenate([np.zeros(16000, dtype=np.int16), noise])) == []
    assert not stage.in_speech


def test_short_click_does_not_start_speech() -> None:
    click = np.zeros(16000, dtype=np.int16)
    click[8000:8080] = 20000
    assert run(VADStage(WebRtcVAD(3), start_ms=120), click) == []
