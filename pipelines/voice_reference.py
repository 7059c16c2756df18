"""A reference recording for a cloned voice: decode, check, normalise. Sans-I/O: bytes in, audio out.

:func:`prepare_reference` decodes any container PyAV reads (wav, mp3, m4a, flac, ogg, webm),
downmixes to mono, resamples to 16 kHz (soxr), checks what makes a bad reference, trims silence
(edges, and pauses longer than ``MAX_PAUSE_S``) and normalises the loudness. It raises
:class:`ReferenceRejected` with a message that says what to do differently, or returns a
:class:`PreparedReference` whose ``checks`` also carry the warnings worth showing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr

from models import spectral as sp
from models.voice_embedding import SpeakerEncoder, similarity
from pipelines.errors import ParleyError

RATE = 16000
TARGET_DB = -18.0  # active RMS of a prepared reference (Piper's output sits at about -16 dBFS)
MAX_PAUSE_S = 0.3
VAD_FRAME = 480  # 30 ms at 16 kHz
CLIP_RUN = 3  # this many consecutive samples at full scale is a flattened (clipped) peak


@dataclass(frozen=True, slots=True)
class ReferenceLimits:
    """What a usable reference is. Every limit is named here with its default."""

    max_bytes: int = 20 * 1024 * 1024
    max_decoded_s: float = 120.0  # longer uploads are cut here before checking
    min_speech_s: float = 3.0
    max_speech_s: float = 30.0
    recommended_speech_s: tuple[float, float] = (5.0, 10.0)
    min_sample_rate: int = 8000
    max_clipped_ratio: float = 0.001  # share of samples in flattened peaks
    min_snr_db: float = 15.0
    warn_snr_db: float = 25.0
    max_silence_ratio: float = 0.6  # warning only: silence is trimmed anyway
    multi_speaker_reject: float = (
        0.35  # a 2 s segment this unlike the rest is someone else (one speaker: 0.6-0.8; mixed: 0.4-0.55)
    )
    multi_speaker_warn: float = 0.5


class ReferenceRejected(ParleyError):
    """Raised when an upload cannot make a voice; ``code`` and ``message`` say why and what to do."""

    def __init__(self, code: str, message: str, status: int = 422, checks: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.checks = checks or []


@dataclass(slots=True)
class PreparedReference:
    """Normalised 16 kHz mono speech, and what the checks found."""

    audio: np.ndarray  # float32, 16 kHz, trimmed and loudness-normalised
    source_rate: int
    source_seconds: float
    speech_seconds: float
    checks: list[dict[str, Any]] = field(default_factory=list)

    def warnings(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if c["status"] == "warn"]


def _check(name: str, status: str, message: str, **values: Any) -> dict[str, Any]:
    return {"name": name, "status": status, "message": message, **values}


def decode_audio(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    """(float32 mono samples, sample rate) of the first audio stream; raises ReferenceRejected if unreadable."""
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise ReferenceRejected(
                    "not_audio",
                    "The file has no audio track. Upload a recording of your voice (WAV, MP3, M4A, FLAC, OGG or WebM).",
                    415,
                )
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate or stream.rate or 0)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate or None)
            parts: list[np.ndarray] = []
            total = 0
            for frame in container.decode(stream):
                rate = rate or int(frame.sample_rate)
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1).astype(np.float32)
                    parts.append(arr)
                    total += len(arr)
                if rate and total > max_seconds * rate:
                    break
    except ReferenceRejected:
        raise
    except (av.error.FFmpegError, ValueError, OSError, UnicodeDecodeError) as exc:
        raise ReferenceRejected(
            "not_audio",
            f"Could not read the file as audio ({type(exc).__name__}). Upload a WAV, MP3, M4A, FLAC, OGG or WebM recording.",
            415,
        ) from exc
    if not parts or not rate:
        raise ReferenceRejected(
            "not_audio", "The file contains no decodable audio. Upload a WAV, MP3, M4A, FLAC, OGG or WebM recording.", 415
        )
    audio = np.concatenate(parts)[: int(max_seconds * rate)]
    return np.nan_to_num(audio), rate


def clipped_ratio(x: np.ndarray) -> float:
    """Share of samples in flattened peaks: runs of ``CLIP_RUN`` or more at full scale, or stuck at the recording's peak."""
    if not len(x):
        return 0.0
    mag = np.abs(x)
    peak = float(mag.max())
    flat = np.concatenate([[False], np.abs(np.diff(x)) < 1e-6])
    hot = (mag >= 0.999) | (flat & (mag >= 0.95 * peak) & (peak > 0.1))
    if not hot.any():
        return 0.0
    edges = np.diff(np.concatenate([[0], hot.astype(np.int8), [0]]))
    runs = np.nonzero(edges == -1)[0] - np.nonzero(edges == 1)[0]
    return float(runs[runs >= CLIP_RUN].sum()) / len(x)


def speech_mask(x: np.ndarray) -> np.ndarray:
    """Per 30 ms frame: speech (webrtcvad, mode 2) that is also within 40 dB of the loud frames."""
    import webrtcvad

    vad = webrtcvad.Vad(2)
    n = len(x) // VAD_FRAME
    frames = x[: n * VAD_FRAME].reshape(n, VAD_FRAME)
    energy = 10 * np.log10((frames.astype(np.float64) ** 2).mean(axis=1) + 1e-12)
    loud = energy > (np.percentile(energy, 95) if n else 0.0) - 40.0
    pcm = (np.clip(frames, -1, 1) * 32767).astype("<i2")
    voiced = np.array([vad.is_speech(f.tobytes(), RATE) for f in pcm], dtype=bool)
    return np.asarray(voiced & loud, dtype=bool)


def estimate_snr_db(x: np.ndarray, mask: np.ndarray) -> float:
    """Loud speech level (90th percentile of speech frames) over the noise floor (20th percentile of the rest)."""
    n = len(mask)
    frames = x[: n * VAD_FRAME].reshape(n, VAD_FRAME).astype(np.float64)
    energy = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    if not mask.any():
        return 0.0
    quiet = energy[~mask] if (~mask).sum() >= 5 else np.sort(energy)[: max(1, n // 10)]
    return float(np.percentile(energy[mask], 90) - np.percentile(quiet, 20))


def trim_pauses(x: np.ndarray, mask: np.ndarray, keep_s: float = MAX_PAUSE_S) -> np.ndarray:
    """Drop leading and trailing silence and shorten every pause to at most ``keep_s`` (100 ms kept at the edges)."""
    keep = mask.copy()
    hang = max(1, int(0.1 * RATE / VAD_FRAME))
    idx = np.nonzero(mask)[0]
    if not len(idx):
        return x
    for j in idx:  # a little context around speech
        keep[max(0, j - hang) : j + hang + 1] = True
    max_gap = int(keep_s * RATE / VAD_FRAME)
    run = 0
    for i in range(len(keep)):
        if keep[i]:
            run = 0
        elif idx[0] < i < idx[-1]:
            run += 1
            keep[i] = run <= max_gap
    frames = x[: len(keep) * VAD_FRAME].reshape(len(keep), VAD_FRAME)
    return np.asarray(frames[keep].reshape(-1), dtype=np.float32)


def speaker_consistency(x: np.ndarray, encoder: SpeakerEncoder, segment_s: float = 2.0) -> float | None:
    """Lowest similarity of one ``segment_s`` stretch of speech to the rest; None under three segments."""
    n = int(segment_s * RATE)
    segs = [x[i : i + n] for i in range(0, len(x) - n + 1, n)]
    if len(segs) < 3:
        return None
    embs = np.stack([encoder.embed(s) for s in segs])
    worst = 1.0
    for i in range(len(embs)):
        rest = np.delete(embs, i, axis=0).mean(axis=0)
        worst = min(worst, similarity(embs[i], rest))
    return worst


def prepare_reference(data: bytes, limits: ReferenceLimits, encoder: SpeakerEncoder | None = None) -> PreparedReference:
    """Decode, check and normalise an uploaded reference. Raises ReferenceRejected with what to fix.

    Blocking (decoding, VAD, a few speaker embeddings: ~0.1-0.5 s); run it in a worker thread.
    """
    if len(data) > limits.max_bytes:
        raise ReferenceRejected(
            "file_too_large",
            f"The file is {len(data) / 1e6:.1f} MB; the limit is {limits.max_bytes / 1e6:.0f} MB. 5-10 s of speech is plenty.",
            413,
        )
    if not data:
        raise ReferenceRejected("empty_file", "The file is empty. Record or choose a recording of 5-10 s of your voice.", 400)
    raw, rate = decode_audio(data, limits.max_decoded_s)
    checks: list[dict[str, Any]] = []

    def reject(code: str, message: str, **values: Any) -> ReferenceRejected:
        checks.append(_check(code, "fail", message, **values))
        return ReferenceRejected(code, message, 422, checks)

    if rate < limits.min_sample_rate:
        raise reject(
            "sample_rate_too_low",
            f"The recording is sampled at {rate} Hz; at least {limits.min_sample_rate} Hz is needed. Record at 16 kHz or more.",
            rate=rate,
        )
    checks.append(
        _check(
            "sample_rate",
            "warn" if rate < 16000 else "ok",
            f"{rate} Hz" + (": telephone quality; 16 kHz or more sounds better" if rate < 16000 else ""),
            rate=rate,
        )
    )
    clipped = clipped_ratio(raw)
    if clipped > limits.max_clipped_ratio:
        raise reject(
            "clipped",
            f"The recording is clipped (distorted peaks in {clipped:.1%} of it). Record again with a lower input volume or further from the microphone.",
            ratio=round(clipped, 5),
        )
    checks.append(
        _check("clipping", "ok", "no clipping" if clipped == 0 else f"{clipped:.2%} clipped: acceptable", ratio=round(clipped, 5))
    )
    x = np.asarray(soxr.resample(raw, rate, RATE, quality="HQ"), np.float32) if rate != RATE else raw
    x = x - float(x.mean()) if len(x) else x
    if not len(x) or float(np.abs(x).max()) < 10 ** (-60 / 20):
        raise reject(
            "silent", "The recording is silent. Check that the right microphone is selected and not muted, then record again."
        )
    mask = speech_mask(x)
    speech_s = float(mask.sum()) * VAD_FRAME / RATE
    total_s = len(x) / RATE
    _check_duration(speech_s, limits, checks, reject)
    silence = 1.0 - speech_s / max(total_s, 1e-9)
    checks.append(
        _check(
            "silence",
            "warn" if silence > limits.max_silence_ratio else "ok",
            f"{silence:.0%} of the recording is silence"
            + ("; it was trimmed, but start speaking sooner next time" if silence > limits.max_silence_ratio else ""),
            ratio=round(silence, 3),
        )
    )
    snr = estimate_snr_db(x, mask)
    if snr < limits.min_snr_db:
        raise reject(
            "too_noisy",
            f"Background noise is only {snr:.0f} dB below your voice (at least {limits.min_snr_db:.0f} dB is needed). Record in a quieter place, closer to the microphone.",
            snr_db=round(snr, 1),
        )
    checks.append(
        _check(
            "noise",
            "warn" if snr < limits.warn_snr_db else "ok",
            f"speech is {min(snr, 60.0):.0f}{'+' if snr > 60 else ''} dB above the background"
            + ("; a quieter room would help" if snr < limits.warn_snr_db else ""),
            snr_db=round(snr, 1),
        )
    )
    speech = trim_pauses(x, mask)
    speech *= np.float32(10 ** ((TARGET_DB - sp.active_rms_db(speech, RATE)) / 20))
    speech = sp.soft_limit(speech, 0.95)
    if encoder is not None:
        worst = speaker_consistency(speech, encoder)
        if worst is not None and worst < limits.multi_speaker_reject:
            raise reject(
                "multiple_speakers",
                "This sounds like more than one person. Upload a recording of one speaker only.",
                consistency=round(worst, 3),
            )
        if worst is not None:
            status = "warn" if worst < limits.multi_speaker_warn else "ok"
            text = (
                "parts of the recording sound like a different voice; one speaker only works best"
                if status == "warn"
                else "one speaker"
            )
            checks.append(_check("one_speaker", status, text, consistency=round(worst, 3)))
    return PreparedReference(speech, rate, round(total_s, 2), round(speech_s, 2), checks)


def _check_duration(speech_s: float, limits: ReferenceLimits, checks: list[dict[str, Any]], reject: Any) -> None:
    lo, hi = limits.recommended_speech_s
    if speech_s < limits.min_speech_s:
        raise reject(
            "too_short",
            f"Only {speech_s:.1f} s of speech found; at least {limits.min_speech_s:.0f} s is needed ({lo:.0f}-{hi:.0f} s works best). Read a few sentences aloud.",
            speech_s=round(speech_s, 2),
        )
    if speech_s > limits.max_speech_s:
        raise reject(
            "too_long",
            f"{speech_s:.0f} s of speech is more than the {limits.max_speech_s:.0f} s limit; trim it to {lo:.0f}-{hi:.0f} s of clear speech.",
            speech_s=round(speech_s, 2),
        )
    ok = lo <= speech_s <= hi
    text = f"{speech_s:.1f} s of speech" + ("" if ok else f"; {lo:.0f}-{hi:.0f} s works best")
    checks.append(_check("duration", "ok" if ok else "warn", text, speech_s=round(speech_s, 2)))
