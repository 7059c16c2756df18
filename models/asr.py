"""Speech recognition adapters. Calls are blocking: run them in a worker thread."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from models.device import Device

SAMPLE_RATE = 16000
_LOOP = re.compile(r"(.{2,}?)\1{2,}")  # a unit of 2+ characters said three times in a row
_REPEAT = re.compile(r"\b(\w.{11,}?)\s+\1")  # a phrase of 12+ characters said twice in a row
_FRAMES_PER_S = 100  # Whisper mel frames per second
_FULL_WINDOW = 3000


@dataclass(frozen=True, slots=True)
class Transcription:
    """Text for one audio buffer, and how it was decoded."""

    text: str
    language: str
    window_frames: int
    fallback: bool = False


class ASR(Protocol):
    """Blocking speech-to-text on 16 kHz float32 mono audio."""

    multilingual: bool

    def transcribe(self, audio: np.ndarray, language: str) -> Transcription: ...


def looks_degenerate(text: str, seconds: float) -> bool:
    """True for Whisper's failure modes: repetition loops and more words than anyone can say."""
    words = text.split()
    if not words:
        return False
    if len(words) > 6 * max(seconds, 0.5) + 3:
        return True
    if _LOOP.search(text.lower() + " ") or _REPEAT.search(text.lower()):
        return True
    raw = text.encode("utf-8")
    return len(raw) > 40 and len(raw) / len(zlib.compress(raw)) > 2.4


class FasterWhisperASR:
    """faster-whisper / CTranslate2 Whisper with a short encoder window.

    Whisper pads every input to 30 s; the encoder cost grows with the window, so this adapter
    encodes only the speech plus ``margin_s`` (at least ``min_window_s``). When the short-window
    output looks degenerate (a repetition loop, an impossible word rate) it decodes again on the
    full 30 s window, which is what plain faster-whisper would have done.
    """

    def __init__(
        self,
        model_dir: Path,
        device: Device,
        *,
        cpu_threads: int = 2,
        beam_size: int = 1,
        margin_s: float = 1.0,
        min_window_s: float = 8.0,
    ) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(
            str(model_dir),
            device=device.kind,
            compute_type=device.ct2_compute_type,
            cpu_threads=cpu_threads,
        )
        self.multilingual = bool(self._model.model.is_multilingual)
        self._beam = beam_size
        self._margin = margin_s
        self._min_window = min_window_s
        self.model_dir = model_dir

    def _prompt(self, language: str) -> tuple[list[int], int, object]:
        from faster_whisper.tokenizer import Tokenizer

        lang = language if self.multilingual else "en"
        tok = Tokenizer(self._model.hf_tokenizer, self.multilingual, task="transcribe", language=lang)
        return [*tok.sot_sequence, tok.no_timestamps], tok.eot, tok

    def _decode(self, feats: np.ndarray, window: int, language: str) -> str:
        import ctranslate2

        n = feats.shape[1]
        padded = np.zeros((feats.shape[0], window), dtype=np.float32)
        padded[:, : min(n, window)] = feats[:, :window]
        encoded = self._model.model.encode(ctranslate2.StorageView.from_array(padded[None]), to_cpu=False)
        prompt, eot, tok = self._prompt(language)
        max_len = min(440, int(n / _FRAMES_PER_S * 8) + 16)
        res = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=self._beam,
            max_length=max_len,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        ids = [t for t in res[0].sequences_ids[0] if t < eot]
        return str(tok.decode(ids)).strip()  # type: ignore[attr-defined]

    def transcribe(self, audio: np.ndarray, language: str) -> Transcription:
        """Transcribe up to 30 s of 16 kHz float32 audio. Blocking: call from a worker thread."""
        audio = np.ascontiguousarray(audio[: SAMPLE_RATE * 30], dtype=np.float32)
        if audio.size < SAMPLE_RATE // 10:
            return Transcription("", language, 0)
        feats = self._model.feature_extractor(audio)
        n = int(feats.shape[1])
        short = int(np.ceil((n + self._margin * _FRAMES_PER_S) / 100.0)) * 100
        window = min(_FULL_WINDOW, max(int(self._min_window * _FRAMES_PER_S), short))
        text = self._decode(feats, window, language)
        if window < _FULL_WINDOW and looks_degenerate(text, audio.size / SAMPLE_RATE):
            return Transcription(self._decode(feats, _FULL_WINDOW, language), language, _FULL_WINDOW, True)
        return Transcription(text, language, window)
