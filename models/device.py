"""Pick the compute device once: ``auto`` uses a GPU when CTranslate2/ONNX Runtime can see one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Device:
    """Where models run and which precision each engine should use there."""

    kind: str  # "cpu" | "cuda"
    ct2_compute_type: str
    onnx_providers: tuple[str, ...]


def _cuda_available() -> bool:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count()) > 0
    except Exception:  # pragma: no cover - depends on the machine
        return False


def select_device(requested: str = "auto") -> Device:
    """Resolve ``auto|cpu|cuda``. Raises ``ValueError`` for cuda on a machine without one."""
    if requested not in {"auto", "cpu", "cuda"}:
        raise ValueError(f"device must be auto, cpu or cuda, not {requested!r}")
    use_cuda = requested == "cuda" or (requested == "auto" and _cuda_available())
    if use_cuda and not _cuda_available():
        raise ValueError("PARLEY_DEVICE=cuda but no CUDA device is visible")
    if use_cuda:
        return Device("cuda", "float16", ("CUDAExecutionProvider", "CPUExecutionProvider"))
    return Device("cpu", "int8", ("CPUExecutionProvider",))
