"""TTSStage: reply text -> clauses -> speech at the call's output rate, first clause first."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import numpy as np

from models.cloning import VoiceConverter
from models.tts import TTS
from pipelines.audio import resample
from pipelines.workers import PriorityWorkers

_CLAUSE_END = re.compile(r"(?<=[.!?;:。！？；])\s+|(?<=[。！？；])")
_SOFT_BREAK = re.compile(r"(?<=,)\s+|(?<=，)")


def split_clauses(text: str, max_chars: int = 120, min_chars: int = 12) -> list[str]:
    """Split into sentences, long sentences at commas, very long ones at word boundaries.

    Short fragments are merged forward so "Sure." still leaves alone but "Hi," does not.
    """
    out: list[str] = []
    for sentence in (s.strip() for s in _CLAUSE_END.split(text)):
        if not sentence:
            continue
        pieces = [sentence] if len(sentence) <= max_chars else [p.strip() for p in _SOFT_BREAK.split(sentence) if p.strip()]
        for piece in pieces:
            while len(piece) > max_chars:
                cut = piece.rfind(" ", 0, max_chars)
                cut = cut if cut > 0 else max_chars
                out.append(piece[:cut].strip())
                piece = piece[cut:].strip()
            if piece:
                out.append(piece)
    merged: list[str] = []
    for piece in out:
        if merged and len(merged[-1]) < min_chars and not merged[-1].endswith((".", "!", "?", "。", "！", "？")):
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged


class ClauseBuffer:
    """Accumulates streamed text and releases complete clauses as soon as they end.

    With ``eager_chars`` set, the reply's first clause may also end at a comma once it is that
    long ("I'm sorry to hear that," is spoken while the model writes the rest of the sentence).
    """

    def __init__(self, eager_chars: int = 0) -> None:
        self._buf = ""
        self._eager = eager_chars
        self._released = False

    def push(self, piece: str) -> list[str]:
        self._buf += piece
        parts = _CLAUSE_END.split(self._buf)
        if len(parts) == 1:
            return self._eager_first()
        self._buf = parts[-1]
        self._released = True
        return [c for p in parts[:-1] for c in split_clauses(p)]

    def _eager_first(self) -> list[str]:
        if self._released or not self._eager:
            return []
        m = next((m for m in _SOFT_BREAK.finditer(self._buf) if m.start() >= self._eager), None)
        if m is None:
            return []
        head, self._buf = self._buf[: m.start()].strip(), self._buf[m.end() :]
        self._released = True
        return [head]

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, ""
        return split_clauses(rest)


class TTSStage:
    """Synthesises clauses on the shared aux pool and resamples to ``out_rate``.

    ``cache`` (shared across calls) keeps whole-clause audio for fixed phrases such as greetings.
    """

    def __init__(
        self,
        tts: TTS,
        pool: PriorityWorkers,
        out_rate: int,
        cache: dict[tuple[str, int], np.ndarray],
        timeout_s: float = 20.0,
        voice: tuple[str, VoiceConverter] | None = None,
    ) -> None:
        self._tts = tts
        self._pool = pool
        self.out_rate = out_rate
        self._cache = cache
        self._timeout = timeout_s
        self._voice_id = voice[0] if voice is not None else ""
        self._converter: VoiceConverter | None = voice[1] if voice is not None else None

    def _render(self, clause: str) -> np.ndarray:
        pcm = self._tts.synthesize(clause)
        if self._converter is not None:  # a cloned voice: converted clause by clause, in this worker
            pcm = self._converter.convert(pcm, self._tts.sample_rate)
        return resample(pcm, self._tts.sample_rate, self.out_rate)

    async def speak(self, clause: str, cache: bool = False) -> np.ndarray:
        """PCM16 at ``out_rate`` for one clause (in the call's voice)."""
        key = (f"{self._voice_id}\x00{clause}" if self._voice_id else clause, self.out_rate)
        if key in self._cache:
            return self._cache[key]
        pcm = await self._pool.run(0, lambda: self._render(clause), self._timeout)
        if cache:
            self._cache[key] = pcm
        return pcm

    async def stream(self, clauses: AsyncIterator[str], cache: bool = False) -> AsyncIterator[tuple[str, np.ndarray]]:
        async for clause in clauses:
            yield clause, await self.speak(clause, cache)
