"""A scripted caller's voice for agent tests: Piper speech at 16 kHz, and a turn that waits for the answer."""

from __future__ import annotations

import numpy as np

from bench.caller import Caller
from models import manifest
from models.device import select_device
from models.tts import PiperTTS
from pipelines.audio import resample


def piper() -> PiperTTS:
    """The bundled Piper voice (no emotional or customer-service speech ships in any package)."""
    return PiperTTS(*manifest.piper_joe(), select_device("cpu"))


def speech(tts: PiperTTS, text: str) -> np.ndarray:
    return resample(tts.synthesize(text), tts.sample_rate, 16000)


async def reply_to(caller: Caller, pcm: np.ndarray) -> str:
    """Say ``pcm``, listen until the agent's answer has been heard, return its text.

    A caller's pause mid-sentence may end a turn early (as with a person): the agent's answer to
    the fragment is then interrupted by the rest, and the answer to the rest is the one returned.
    """
    n = len(caller.log.of("agent.audio.done"))
    await caller.say(pcm)
    await caller.silence(0.3)
    audio = await caller.wait_for("agent.audio.done", n + 1, timeout=90)
    await caller.listen(audio["duration_ms"] / 1000 + 0.5)
    return str(caller.log.of("agent.text.done")[-1]["text"])
