"""Short-time spectral analysis in numpy for voice conversion: STFT and its exact inverse, cepstral
envelopes, mel-band spectra and MFCCs, speech-frame masks, and the edges of a converted clause.

Analysis for fitting and matching always runs on 16 kHz audio with a 512-point, 32 ms Hann frame
every 8 ms (``N_FFT``/``HOP``), so envelopes and features from references recorded at any rate are
comparable. Every function is pure and thread-safe.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.voice_embedding import slaney_mel_filters

RATE = 16000
N_FFT = 512
HOP = 128
N_BINS = N_FFT // 2 + 1
N_MELS = 40
N_MFCC = 20  # c1..c19 are used for matching; c0 (level) is dropped
LIFTER = 16  # cepstral coefficients kept in an envelope: smooth enough to drop the harmonics of a 60-400 Hz voice
SPEECH_RANGE_DB = 35.0  # frames more than this below the loud (95th percentile) frames are pauses


@lru_cache(maxsize=8)
def hann(n: int) -> np.ndarray:
    """Periodic Hann window of ``n`` samples."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def stft(x: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """(frames, n_fft // 2 + 1) complex spectrum; the signal is zero-padded by ``n_fft`` on both sides."""
    x = np.asarray(x, dtype=np.float32)
    pad = np.concatenate([np.zeros(n_fft, np.float32), x, np.zeros(n_fft, np.float32)])
    n = 1 + (len(pad) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    return np.fft.rfft(pad[idx] * hann(n_fft), axis=1).astype(np.complex64)


def istft(spec: np.ndarray, length: int, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """Inverse of :func:`stft` (weighted overlap-add); exact for an unmodified spectrum."""
    win = hann(n_fft)
    frames = np.fft.irfft(spec, n_fft, axis=1).astype(np.float32) * win
    n = len(frames)
    total = n_fft + hop * (n - 1)
    out = np.zeros(total, np.float32)
    norm = np.zeros(total, np.float32)
    # overlap-add in n_fft // hop interleaved groups: frames inside a group never overlap
    step = n_fft // hop
    for k in range(step):
        grp = frames[k::step]
        if not len(grp):
            continue
        start = k * hop
        span = grp.reshape(-1)
        out[start : start + len(span)] += span
        norm[start : start + len(span)] += np.tile(win * win, len(grp))
    out /= np.maximum(norm, 1e-3)
    return out[n_fft : n_fft + length]


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    return slaney_mel_filters(RATE, N_FFT, N_MELS)


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II, (N_MELS, N_MFCC)."""
    k = np.arange(N_MFCC)[None, :]
    n = np.arange(N_MELS)[:, None]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * N_MELS)) * np.sqrt(2.0 / N_MELS)
    m[:, 0] /= np.sqrt(2.0)
    return np.asarray(m, dtype=np.float32)


@lru_cache(maxsize=1)
def _cepstrum_basis() -> np.ndarray:
    """(LIFTER, N_BINS): dB envelope = cepstrum @ basis, for a real, even cepstrum."""
    q = np.arange(LIFTER)[:, None]
    k = np.arange(N_BINS)[None, :]
    basis = np.cos(2 * np.pi * q * k / N_FFT) * np.where(q == 0, 1.0, 2.0)
    return np.asarray(basis * 20 / np.log(10), dtype=np.float32)


def cepstra(spec: np.ndarray) -> np.ndarray:
    """(frames, LIFTER) low-quefrency real cepstrum of each frame: its smooth spectral envelope."""
    log_mag = np.log(np.abs(spec) + 1e-7)
    return np.fft.irfft(log_mag, N_FFT, axis=1)[:, :LIFTER].astype(np.float32)


def envelope_db(ceps: np.ndarray) -> np.ndarray:
    """(frames, N_BINS) envelope in dB from :func:`cepstra` output."""
    return np.asarray(ceps @ _cepstrum_basis(), dtype=np.float32)


def mel_power(spec: np.ndarray) -> np.ndarray:
    """(frames, N_MELS) mel-band power."""
    return np.asarray((np.abs(spec) ** 2).astype(np.float32) @ mel_filters().T, dtype=np.float32)


def mfcc(spec: np.ndarray) -> np.ndarray:
    """(frames, N_MFCC - 1) MFCCs c1..c19 (level-free) for matching frames by phonetic content."""
    return np.asarray(np.log(mel_power(spec) + 1e-10) @ _dct_matrix()[:, 1:], dtype=np.float32)


def speech_frames(spec: np.ndarray, range_db: float = SPEECH_RANGE_DB) -> np.ndarray:
    """Boolean mask of frames within ``range_db`` of the loud frames (95th percentile energy)."""
    energy = 10 * np.log10((np.abs(spec) ** 2).sum(axis=1) + 1e-12)
    if not len(energy):
        return np.zeros(0, dtype=bool)
    return np.asarray(energy > np.percentile(energy, 95) - range_db)


def mel_ltas_db(spec: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Long-term average spectrum as the speaker encoder sees it: mean over speech frames of dB mel power."""
    if not mask.any():
        return np.zeros(N_MELS, np.float32)
    return np.asarray((10 * np.log10(mel_power(spec[mask]) + 1e-10)).mean(axis=0), dtype=np.float32)


def bands_to_bins(band_db: np.ndarray) -> np.ndarray:
    """Spread per-mel-band dB values over the linear FFT bins (filter-weighted, edges held)."""
    fb = mel_filters().T  # (bins, bands)
    den = fb.sum(axis=1)
    out = np.full(N_BINS, np.nan, np.float32)
    ok = den > 1e-9
    out[ok] = (fb[ok] @ band_db) / den[ok]
    idx = np.arange(N_BINS)
    return np.asarray(np.interp(idx, idx[ok], out[ok]), dtype=np.float32)


def active_rms_db(x: np.ndarray, rate: int, range_db: float = 30.0) -> float:
    """RMS level (dBFS) of the active 10 ms frames: within ``range_db`` of the loud ones."""
    n = max(1, rate // 100)
    frames = np.asarray(x[: len(x) // n * n], dtype=np.float64).reshape(-1, n)
    if not len(frames):
        return -120.0
    e = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    keep = e > np.percentile(e, 95) - range_db
    return float(10 * np.log10((frames[keep] ** 2).mean() + 1e-12))


def soft_limit(x: np.ndarray, threshold: float = 0.89) -> np.ndarray:
    """Leave samples below ``threshold`` alone; compress the rest smoothly towards 1.0 (no hard clipping)."""
    y = np.asarray(x, dtype=np.float32).copy()
    over = np.abs(y) > threshold
    if over.any():
        head = 1.0 - threshold
        y[over] = np.sign(y[over]) * (threshold + head * np.tanh((np.abs(y[over]) - threshold) / head))
    return y


def fade_edges(x: np.ndarray, rate: int, ms: float = 4.0) -> np.ndarray:
    """Raised-cosine fade-in and fade-out of ``ms`` so consecutive clauses join without a click."""
    n = min(len(x) // 2, int(rate * ms / 1000))
    if n <= 0:
        return x
    ramp = (0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)).astype(np.float32)
    y = np.asarray(x, dtype=np.float32).copy()
    y[:n] *= ramp
    y[-n:] *= ramp[::-1]
    return y
