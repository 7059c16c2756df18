"""Cloned voices as a service: create one from an uploaded recording, store it, load it for calls,
and speak with it.

One :class:`VoiceLibrary` per server (see :func:`library`), created on first use so start-up
does not pay for it. Fitting a voice takes ~10 s of CPU and runs in its own thread, one at a
time; speech recognition for the intelligibility check goes through the shared ASR pool at a
priority below every call's decodes. Files live in ``<data_dir>/voices/<id>/``: ``reference.wav``
(the prepared 16 kHz reference), ``original.<ext>`` (the upload, for engines that refit),
``frames.npz`` (the converter's reference frames) and ``preview.wav``.

For calls: ``converter = await load_voice(parley, voice_id)`` once per session (None for the
stock voice), then ``converter.convert(pcm, tts.sample_rate)`` on each clause right after
synthesis, in the same worker thread.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import shutil
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf
import soxr

from models.cloning import VoiceConverter
from models.hub import ModelHub
from models.voice_embedding import VoiceFilterSpeakerEncoder, similarity
from models.voice_fit import Convert, PraatVoiceCloner
from pipelines.errors import ParleyError
from pipelines.tts import split_clauses
from pipelines.voice_reference import RATE, PreparedReference, ReferenceLimits, ReferenceRejected, prepare_reference
from settings import Settings
from storage import Store

log = logging.getLogger("parley.voices")

# the stock voice says these during fitting; judged by ASR (no digits: "nine" vs "9" is not an error)
FIT_SENTENCES = (
    "Thanks for calling, how can I help you today?",
    "Sure, I can check that order for you right now.",
    "Your appointment is booked for Tuesday afternoon.",
    "I'm sorry to hear that; let me see what I can do.",
    "Could you spell your last name for me, please?",
)
# the intelligibility judge: the fit sentences and more (~150 words), decoded eight sentences at a time
# (~20 s each, one Whisper window): fewer words make the WER of one voice too noisy to choose by
JUDGE_SENTENCES = (
    *FIT_SENTENCES,
    "The delivery window is between noon and four o'clock.",
    "Let me read that back to make sure I have it right.",
    "Your booking reference has been sent by text message.",
    "I've updated the address on your account.",
    "The manager will call you back before the end of the day.",
    "Would you prefer a morning or an afternoon appointment?",
    "Our technician can visit on Thursday or Friday.",
    "I'm afraid that item is out of stock at the moment.",
    "You can pay by card, by bank transfer, or in person.",
    "The password reset link expires after one hour.",
    "Thank you for your patience, and have a lovely evening.",
)
JUDGE_BATCH = 8
PREVIEW_TEXT = (
    "Hello! This is how I will sound on your calls. I can answer questions, check an order, or book an appointment for you."
)
ASR_PRIORITY = 3  # below finals (0), speculative decodes (1) and partials (2) of live calls
_GAP_S = 0.25


class UnknownVoice(ParleyError):
    """Raised when a voice id names no stored voice."""

    code = "unknown_voice"


class VoiceLimitReached(ParleyError):
    """Raised when ``max_voices`` voices are already stored."""

    code = "voice_limit"


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """Limits of the voice service, read from ``PARLEY_VOICE_<FIELD>`` (reference checks: ``ReferenceLimits``)."""

    max_voices: int = 500
    max_name_chars: int = 80
    max_transcript_chars: int = 2000
    max_text_chars: int = 1000  # POST /api/tts
    fit_timeout_s: float = 180.0
    max_wer_increase: float = 0.03  # a cloned voice may cost at most this much WER over the stock voice (~4 of 150 words)
    cache_size: int = 32  # converters kept in memory
    limits: ReferenceLimits = field(default_factory=ReferenceLimits)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> VoiceSettings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"PARLEY_VOICE_{f.name.upper()}")
            if raw is not None and f.name != "limits":
                values[f.name] = float(raw) if f.type in (float, "float") else int(raw)
        max_mb = env.get("PARLEY_VOICE_MAX_UPLOAD_MB")
        if max_mb is not None:
            values["limits"] = ReferenceLimits(max_bytes=int(float(max_mb) * 1024 * 1024))
        return cls(**values)


class ParleyLike(Protocol):
    """What the voice service needs of ``server.Parley``."""

    hub: ModelHub | None
    store: Store | None
    settings: Settings


def to_wav(pcm: np.ndarray, rate: int) -> bytes:
    """PCM16 mono -> WAV file bytes."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(pcm, np.int16), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def to_16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    """PCM16 at ``rate`` -> float32 at 16 kHz (for the speaker encoder and ASR)."""
    x = np.asarray(pcm, np.float32) / 32768.0
    return x if rate == RATE else np.asarray(soxr.resample(x, rate, RATE), np.float32)


def judge_wer(clips: list[np.ndarray], rate: int, transcribe: Callable[[np.ndarray], str]) -> float:
    """Pooled WER of ``JUDGE_SENTENCES`` spoken in ``clips`` (PCM16 at ``rate``), ``JUDGE_BATCH`` sentences per decode."""
    from bench.metrics import normalise, wer

    gap = np.zeros(int(_GAP_S * rate), np.int16)
    errors = words = 0.0
    for i in range(0, len(JUDGE_SENTENCES), JUDGE_BATCH):
        texts = " ".join(JUDGE_SENTENCES[i : i + JUDGE_BATCH])
        audio = to_16k(np.concatenate([x for c in clips[i : i + JUDGE_BATCH] for x in (c, gap)]), rate)
        n = len(normalise(texts))
        errors += wer(texts, transcribe(audio)) * n
        words += n
    return errors / max(words, 1.0)


class VoiceLibrary:
    """Creates, stores, loads and speaks with cloned voices. Async methods are for the event loop."""

    def __init__(self, hub: ModelHub, store: Store, data_dir: Path, settings: VoiceSettings | None = None) -> None:
        self.hub = hub
        self.store = store
        self.root = data_dir / "voices"
        self.settings = settings or VoiceSettings.from_env()
        self.encoder = VoiceFilterSpeakerEncoder()  # the ONNX session loads on first use
        self.cloner = PraatVoiceCloner(self.encoder, judge=self._judge, max_wer_increase=self.settings.max_wer_increase)
        self._converters: OrderedDict[str, VoiceConverter] = OrderedDict()
        self._stock: dict[str, np.ndarray] = {}
        self._stock_lock = threading.Lock()
        self._create_lock = asyncio.Lock()

    # ---- blocking helpers (worker threads) ------------------------------------------------

    def stock_clause(self, text: str) -> np.ndarray:
        """The stock voice saying one clause (PCM16 at ``hub.tts.sample_rate``), cached."""
        with self._stock_lock:
            cached = self._stock.get(text)
        if cached is None:
            cached = self.hub.tts.synthesize(text)
            with self._stock_lock:
                self._stock[text] = cached
        return cached

    def render(self, text: str, converter: VoiceConverter | None) -> np.ndarray:
        """Speak ``text`` clause by clause, as a call does: synthesise, then convert each clause."""
        rate = self.hub.tts.sample_rate
        parts = []
        for clause in split_clauses(text):
            pcm = self.hub.tts.synthesize(clause)
            parts.append(pcm if converter is None else converter.convert(pcm, rate))
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def _judge(self, convert: Convert | None) -> float:
        """Word error rate of ``JUDGE_SENTENCES`` in the stock voice, or converted by ``convert``."""
        rate = self.hub.tts.sample_rate
        clips = [self.stock_clause(t) for t in JUDGE_SENTENCES]
        if convert is not None:
            clips = [convert(c, rate) for c in clips]
        asr = self.hub.asr_en

        def transcribe(audio16k: np.ndarray) -> str:
            job = self.hub.asr_pool.submit(ASR_PRIORITY, lambda: asr.transcribe(audio16k, "en").text)
            return job.result(self.settings.fit_timeout_s)

        return judge_wer(clips, rate, transcribe)

    def _transcript_check(self, prepared: PreparedReference, transcript: str) -> dict[str, Any]:
        from bench.metrics import wer

        asr = self.hub.asr_en
        heard = self.hub.asr_pool.submit(ASR_PRIORITY, lambda: asr.transcribe(prepared.audio[: RATE * 30], "en").text).result(60)
        err = wer(transcript, heard)
        status = "warn" if err > 0.5 else "ok"
        message = (
            "the recording matches the transcript"
            if status == "ok"
            else f"the recording does not match the transcript (heard: {heard!r})"
        )
        return {"name": "transcript", "status": status, "message": message, "wer": round(err, 3)}

    def _create_blocking(
        self, voice_id: str, data: bytes, suffix: str, transcript: str | None
    ) -> tuple[dict[str, Any], VoiceConverter]:
        """Check, fit and write the files of a new voice; returns the columns to store and the converter."""
        prepared = prepare_reference(data, self.settings.limits, self.encoder)
        checks = prepared.checks + ([self._transcript_check(prepared, transcript)] if transcript else [])
        rate = self.hub.tts.sample_rate
        final = self.root / voice_id
        work = self.root / f".{voice_id}.partial"
        work.mkdir(parents=True, exist_ok=True)
        try:
            sf.write(str(work / "reference.wav"), prepared.audio, RATE, subtype="PCM_16")
            (work / f"original{suffix}").write_bytes(data)
            clone = self.cloner.clone(prepared.audio, [self.stock_clause(t) for t in FIT_SENTENCES], rate, work)
            preview = self.render(PREVIEW_TEXT, clone.converter)
            (work / "preview.wav").write_bytes(to_wav(preview, rate))
            ref_emb = self.encoder.embed(prepared.audio)
            stock_preview = np.concatenate([self.stock_clause(c) for c in split_clauses(PREVIEW_TEXT)])
            figures = {
                "preview": round(similarity(self.encoder.embed(to_16k(preview, rate)), ref_emb), 4),
                "stock_preview": round(similarity(self.encoder.embed(to_16k(stock_preview, rate)), ref_emb), 4),
                **{k: v for k, v in clone.scores.items() if k != "candidates"},
                "speech_s": prepared.speech_seconds,
            }
            work.rename(final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        columns = {
            "engine": self.cloner.engine,
            "params": {**clone.params, "candidates": clone.scores.get("candidates", [])},
            "embedding": [round(float(v), 5) for v in ref_emb],
            "reference_path": str(final),
            "checks": checks,
            "similarity": figures,
        }
        return columns, clone.converter

    # ---- async API --------------------------------------------------------------------------

    async def create(
        self, data: bytes, filename: str, name: str, transcript: str | None = None, staff_code: str | None = None
    ) -> dict[str, Any]:
        """Fit and store a voice from an uploaded recording. Raises ReferenceRejected, VoiceLimitReached."""
        name = name.strip()
        if not name or len(name) > self.settings.max_name_chars:
            raise ReferenceRejected("invalid_name", f"Give the voice a name of 1-{self.settings.max_name_chars} characters.", 400)
        if transcript is not None and len(transcript) > self.settings.max_transcript_chars:
            raise ReferenceRejected(
                "invalid_transcript", f"The transcript is longer than {self.settings.max_transcript_chars} characters.", 400
            )
        if await self.store.count_voices() >= self.settings.max_voices:
            raise VoiceLimitReached(f"{self.settings.max_voices} voices are stored already; delete one first")
        voice_id = uuid.uuid4().hex[:16]
        suffix = Path(filename or "").suffix.lower()
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".bin"
        async with self._create_lock:
            columns, conv = await asyncio.wait_for(
                asyncio.to_thread(self._create_blocking, voice_id, data, suffix, transcript or None), self.settings.fit_timeout_s
            )
        try:
            await self.store.add_voice(
                voice_id, name=name, staff_code=staff_code or None, transcript=transcript or None, **columns
            )
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, self.root / voice_id, True)
            raise
        self._remember(voice_id, conv)
        detail = await self.get(voice_id)
        assert detail is not None
        return detail

    async def get(self, voice_id: str) -> dict[str, Any] | None:
        """A voice as the API shows it (no embedding), or None."""
        row = await self.store.get_voice(voice_id)
        if row is None:
            return None
        row.pop("embedding", None)
        row.pop("reference_path", None)
        row["sample_url"] = f"/api/voices/{voice_id}/sample"
        return row

    async def converter(self, voice_id: str) -> VoiceConverter:
        """The voice's converter (cached). Raises UnknownVoice."""
        cached = self._converters.get(voice_id)
        if cached is not None:
            self._converters.move_to_end(voice_id)
            return cached
        row = await self.store.get_voice(voice_id)
        if row is None:
            raise UnknownVoice(f"unknown voice {voice_id!r}; create one with POST /api/voices or use 'default'")
        params = {k: v for k, v in row["params"].items() if k != "candidates"}
        conv = await asyncio.to_thread(self.cloner.load, params, Path(row["reference_path"]))
        self._remember(voice_id, conv)
        return conv

    def _remember(self, voice_id: str, conv: VoiceConverter) -> None:
        self._converters[voice_id] = conv
        self._converters.move_to_end(voice_id)
        while len(self._converters) > self.settings.cache_size:
            self._converters.popitem(last=False)

    async def delete(self, voice_id: str) -> bool:
        """Remove a voice and its files; False if there was none."""
        row = await self.store.get_voice(voice_id)
        if row is None:
            return False
        await self.store.delete_voice(voice_id)
        self._converters.pop(voice_id, None)
        await asyncio.to_thread(shutil.rmtree, Path(row["reference_path"]), True)
        return True

    async def sample(self, voice_id: str) -> bytes:
        """The voice's preview as WAV bytes (rendered again if its file is missing). Raises UnknownVoice."""
        row = await self.store.get_voice(voice_id)
        if row is None:
            raise UnknownVoice(f"unknown voice {voice_id!r}")
        path = Path(row["reference_path"]) / "preview.wav"
        if path.exists():
            return await asyncio.to_thread(path.read_bytes)
        return await self.speak(PREVIEW_TEXT, voice_id)

    async def speak(self, text: str, voice_id: str | None, timeout_s: float = 60.0) -> bytes:
        """``text`` in a voice (None: the stock voice) as WAV bytes, on the shared aux pool below live calls."""
        conv = await self.converter(voice_id) if voice_id else None
        pcm = await self.hub.aux_pool.run(1, lambda: self.render(text, conv), timeout_s)
        return to_wav(pcm, self.hub.tts.sample_rate)


_LIBRARIES: weakref.WeakKeyDictionary[Any, VoiceLibrary] = weakref.WeakKeyDictionary()


def library(parley: ParleyLike) -> VoiceLibrary:
    """The server's voice library, created on first use. Raises RuntimeError before models are loaded."""
    lib = _LIBRARIES.get(parley)
    if lib is None:
        if parley.hub is None or parley.store is None:
            raise RuntimeError("models are still loading")
        lib = VoiceLibrary(parley.hub, parley.store, parley.settings.data_dir)
        _LIBRARIES[parley] = lib
    return lib


async def load_voice(parley: ParleyLike, voice_id: str | None) -> VoiceConverter | None:
    """The converter for a call's ``voice``: None for the stock voice (None, "" or "default").

    Raises UnknownVoice (``code`` "unknown_voice") for an id that names no stored voice. The
    converter is shared and thread-safe; call ``convert(pcm, rate)`` on each synthesised clause.
    """
    if voice_id in (None, "", "default"):
        return None
    return await library(parley).converter(voice_id)
