"""Semantic end of turn: Smart Turn v3 (Whisper-encoder classifier, ONNX) on the last 8 s of audio."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from models.device import Device

SAMPLE_RATE = 16000
WINDOW_S = 8


class TurnModel(Protocol):
    """Probability that the caller has finished their turn, given audio ending now."""

    def completion_probability(self, audio: np.ndarray) -> float: ...


class SmartTurnModel:
    """Loads the Smart Turn ONNX directly with onnxruntime (no pipecat pipeline needed).

    Blocking (~150 ms on one CPU thread): call from a worker thread.
    """

    def __init__(self, path: Path, device: Device, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = [p for p in device.onnx_providers if p in ort.get_available_providers()]
        self._session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        self.path = path

    def completion_probability(self, audio: np.ndarray) -> float:
        from pipecat.audio.turn.smart_turn._whisper_features import compute_whisper_log_mel_features

        n = SAMPLE_RATE * WINDOW_S
        audio = np.asarray(audio, dtype=np.float32)[-n:]
        if audio.size < n:
            audio = np.pad(audio, (n - audio.size, 0))
        feats = compute_whisper_log_mel_features(audio, do_normalize=True)
        out = self._session.run(None, {"input_features": feats[None].astype(np.float32)})
        return float(np.asarray(out[0]).reshape(-1)[0])
