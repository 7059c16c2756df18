"""Reference preparation, byte by byte: containers and codecs, and every check, bad input included."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from bench.caller import librivox_clips
from bench.voices import cards_clips, read_clip
from models import spectral as sp
from pipelines.voice_reference import RATE, TARGET_DB, ReferenceLimits, ReferenceRejected, clipped_ratio, prepare_reference

LIMITS = ReferenceLimits()


def speech(n: int = 2) -> np.ndarray:
    """The first ``n`` LibriVox clips, PCM16 at 16 kHz (one male reader)."""
    return np.concatenate([read_clip(p) for p, _ in librivox_clips()[:n]])


def wav(pcm: np.ndarray, rate: int = RATE) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def encode(pcm: np.ndarray, container: str, codec: str, rate: int, layout: str = "mono") -> bytes:
    """Encode with PyAV, as a browser or a phone would have (MediaRecorder gives webm/opus, phones m4a/aac)."""
    import av

    from pipelines.audio import resample

    x = resample(pcm, RATE, rate)
    channels = 2 if layout == "stereo" else 1
    frame = av.AudioFrame.from_ndarray(np.repeat(x, channels)[None, :], format="s16", layout=layout)
    frame.sample_rate = rate
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream: Any = out.add_stream(codec, rate=rate, layout=layout)
        stream.codec_context.open()
        ctx = stream.codec_context
        resampler = av.AudioResampler(format=ctx.format.name, layout=layout, rate=rate, frame_size=ctx.frame_size or 1024)
        for f in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("container", "codec", "rate", "layout"),
    [
        ("wav", "pcm_s16le", 44100, "stereo"),
        ("mp3", "libmp3lame", 44100, "mono"),
        ("ipod", "aac", 48000, "mono"),  # .m4a
        ("flac", "flac", 16000, "mono"),
        ("ogg", "libopus", 24000, "mono"),
        ("webm", "libopus", 48000, "mono"),
    ],
)
def test_containers_decode_to_normalised_16k_speech(container: str, codec: str, rate: int, layout: str) -> None:
    data = encode(speech(), container, codec, rate, layout)
    ref = prepare_reference(data, LIMITS)
    assert ref.source_rate == (48000 if codec == "libopus" else rate)  # Opus always decodes at 48 kHz
    assert 8.0 < ref.speech_seconds < 10.5, ref.speech_seconds
    assert abs(sp.active_rms_db(ref.audio, RATE) - TARGET_DB) < 1.5
    assert float(np.abs(ref.audio).max()) <= 0.97
    assert len(ref.audio) <= ref.source_seconds * RATE
    assert {c["name"]: c["status"] for c in ref.checks}["duration"] == "ok"


def reject(data: bytes, limits: ReferenceLimits = LIMITS) -> ReferenceRejected:
    with pytest.raises(ReferenceRejected) as info:
        prepare_reference(data, limits)
    assert len(info.value.message) > 20
    return info.value


def test_bad_references_say_what_to_fix() -> None:
    assert reject(b"").code == "empty_file"
    e = reject(b"\x00\x01garbage" * 1000)
    assert (e.code, e.status) == ("not_audio", 415)
    e = reject(wav(speech()), ReferenceLimits(max_bytes=1000))
    assert (e.code, e.status) == ("file_too_large", 413)
    e = reject(wav(speech()[: RATE * 2]))
    assert e.code == "too_short" and "at least 3 s" in e.message and e.checks[-1]["status"] == "fail"
    assert reject(wav(np.zeros(RATE * 8, np.int16))).code == "silent"
    loud = np.clip(speech().astype(np.int32) * 8, -32768, 32767).astype(np.int16)
    assert reject(wav(loud)).code == "clipped"
    e = reject(wav(speech()[::3], 5333))
    assert e.code == "sample_rate_too_low" and "5333 Hz" in e.message
    noisy = speech() + np.random.default_rng(0).normal(0, 1500, len(speech())).astype(np.int16)
    assert reject(wav(noisy)).code == "too_noisy"
    assert reject(wav(np.tile(speech(), 5)), ReferenceLimits()).code == "too_long"


def test_warnings_for_usable_but_imperfect_references() -> None:
    # 4 s of speech: usable, shorter than recommended; 8 kHz: telephone quality
    from pipelines.audio import resample

    short = prepare_reference(wav(resample(read_clip(librivox_clips()[0][0])[: RATE * 5], RATE, 8000), 8000), LIMITS)
    status = {c["name"]: c["status"] for c in short.checks}
    assert status["sample_rate"] == "warn" and status["duration"] == "warn"
    # lots of silence around the speech: trimmed, with a warning
    padded = np.concatenate([np.zeros(RATE * 10, np.int16), speech(1), np.zeros(RATE * 10, np.int16)])
    ref = prepare_reference(wav(padded), LIMITS)
    assert {c["name"]: c["status"] for c in ref.checks}["silence"] == "warn"
    assert len(ref.audio) < RATE * 8


def test_a_second_speaker_is_noticed() -> None:
    from models.voice_embedding import VoiceFilterSpeakerEncoder

    enc = VoiceFilterSpeakerEncoder()
    one = prepare_reference(wav(speech(2)), LIMITS, enc)
    assert {c["name"]: c["status"] for c in one.checks}["one_speaker"] == "ok"
    mixed = np.concatenate([read_clip(librivox_clips()[0][0]), read_clip(cards_clips()[4]), read_clip(cards_clips()[1])])
    try:
        two = prepare_reference(wav(mixed), LIMITS, enc)
    except ReferenceRejected as exc:
        assert exc.code == "multiple_speakers"
    else:
        assert {c["name"]: c["status"] for c in two.checks}["one_speaker"] == "warn"


def test_clipping_detector() -> None:
    t = np.arange(RATE) / RATE
    clean = (0.99 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)  # touches full scale, never flat
    assert clipped_ratio(clean) < 1e-4
    flat = np.clip(clean * 3, -0.5, 0.5)  # clipped, then turned down
    assert clipped_ratio(flat) > 0.3
