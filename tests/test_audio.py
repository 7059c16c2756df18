"""Resampling and framing on generated signals."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.audio import Framer, StreamResampler, resample, to_float, to_int16


def tone(freq: float, rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return to_int16(0.5 * np.sin(2 * np.pi * freq * t))


def dominant_freq(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(to_float(x) * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


@pytest.mark.parametrize("rate", [8000, 24000, 48000])
def test_stream_resampler_keeps_pitch_and_length(rate: int) -> None:
    x = tone(440, rate, 1.0)
    rs = StreamResampler(rate, 16000)
    chunks = [rs.process(x[i : i + rate // 50]) for i in range(0, len(x), rate // 50)]
    y = np.concatenate([*chunks, rs.flush()])
    assert abs(len(y) - 16000) <= 16
    assert abs(dominant_freq(y[2000:14000], 16000) - 440) < 5


def test_stream_resampler_has_no_seams() -> None:
    x = tone(300, 48000, 0.5)
    rs = StreamResampler(48000, 16000)
    y = np.concatenate([rs.process(x[i : i + 960]) for i in range(0, len(x), 960)] + [rs.flush()])
    whole = resample(x, 48000, 16000)
    n = min(len(y), len(whole)) - 200
    # chunked and one-shot output agree away from the edges: no clicks at chunk borders
    assert np.max(np.abs(y[200:n].astype(int) - whole[200:n].astype(int))) < 400
    assert np.max(np.abs(np.diff(y[200:n].astype(int)))) < 2000


def test_identity_rate_is_passthrough() -> None:
    x = tone(100, 16000, 0.1)
    assert np.array_equal(StreamResampler(16000, 16000).process(x), x)


def test_framer_cuts_exact_frames_and_keeps_remainder() -> None:
    f = Framer(320)
    frames = f.push(np.arange(700, dtype=np.int16))
    assert [len(x) for x in frames] == [320, 320]
    frames = f.push(np.arange(300, dtype=np.int16))
    assert [len(x) for x in frames] == [320]
    assert len(f.remainder()) == 40


def test_int16_float_round_trip_clips() -> None:
    assert to_int16(np.array([2.0, -2.0, 0.0])).tolist() == [32767, -32767, 0]
    assert to_float(np.array([-32768], dtype=np.int16))[0] == -1.0
