"""Text-to-speech adapters. ``synthesize`` is blocking: run it in a worker thread."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from models.device import Device


class TTS(Protocol):
    """Speaks one clause; returns PCM16 mono at ``sample_rate``."""

    sample_rate: int

    def synthesize(self, text: str) -> np.ndarray: ...


class PiperTTS:
    """Piper (VITS, ONNX). One voice instance is shared by all calls; synthesis is thread-safe in onnxruntime."""

    def __init__(self, model: Path, config: Path, device: Device) -> None:
        from piper import PiperVoice

        self._voice = PiperVoice.load(str(model), config_path=str(config), use_cuda=device.kind == "cuda")
        self.sample_rate = int(self._voice.config.sample_rate)
        self.model = model

    def synthesize(self, text: str) -> np.ndarray:
        parts = [chunk.audio_int16_array for chunk in self._voice.synthesize(text)]
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(parts).astype(np.int16, copy=False)
