"""CallSession in process with scripted models: failures become events and the call goes on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from agent.personas import DEFAULT_PERSONA
from agent.policy import Reply
from agent.state import DialogueState
from bench.caller import librivox_clips, load_pcm
from models.asr import Transcription
from pipelines import events as ev
from pipelines.runner import CallSession
from pipelines.workers import PriorityWorkers
from settings import Settings


class ScriptedASR:
    """Returns the n-th scripted transcript for the n-th utterance; raises for entries that are exceptions.

    Decodes of one utterance (partials, speculative, final) see growing audio; a shorter buffer
    means the next utterance began.
    """

    multilingual = False

    def __init__(self, script: list[str | Exception]) -> None:
        self.script = script
        self.utterance = -1
        self._last_len = 1 << 62

    def transcribe(self, audio: np.ndarray, language: str) -> Transcription:
        if len(audio) < self._last_len - 16000:
            self.utterance += 1
        self._last_len = len(audio)
        if len(audio) < 16000 * 6.6:  # early partials (speech in the clip ends at 6.7 s): nothing yet
            return Transcription("", language, 0)
        item = self.script[min(self.utterance, len(self.script) - 1)]
        if isinstance(item, Exception):
            raise item
        return Transcription(item, language, 800)


class ToneTTS:
    sample_rate = 16000

    def __init__(self, fail_on: str = "") -> None:
        self.fail_on = fail_on

    def synthesize(self, text: str) -> np.ndarray:
        if self.fail_on and self.fail_on in text:
            raise RuntimeError("TTS engine crashed")
        return np.full(1600 * max(1, len(text) // 10), 1000, dtype=np.int16)


class EchoPolicy:
    last_reply: Reply | None = None

    async def respond(self, state: DialogueState) -> AsyncIterator[str]:
        yield f"You said {state.last_caller_text()}."


class Hub:
    def __init__(self, asr: ScriptedASR, tts: ToneTTS) -> None:
        self.asr = asr
        self.tts = tts
        self.turn = None
        self.embedder = None
        self.text_emotion = None
        self.emotion_pool = None
        self.emotion_model = None
        self.asr_pool = PriorityWorkers(1, "t-asr")
        self.aux_pool = PriorityWorkers(1, "t-aux")

    def asr_for(self, language: str) -> ScriptedASR:
        return self.asr

    def close(self) -> None:
        self.asr_pool.close()
        self.aux_pool.close()


async def drive(hub: Hub, utterances: int) -> tuple[CallSession, list[ev.OutboundEvent]]:
    settings = Settings.from_env({}, smart_turn=False, turn_max_silence_ms=400, playback_lead_ms=5000)
    session = CallSession(hub, settings, input_rate=16000, persona=DEFAULT_PERSONA, policy=EchoPolicy())  # type: ignore[arg-type]
    runner = asyncio.create_task(session.run())
    speech = load_pcm(librivox_clips()[0][0], 16000)
    for _ in range(utterances):
        # faster than real time: the listener works on caller-audio time, not the wall clock
        for i in range(0, len(speech), 3200):
            session.inbox.put(speech[i : i + 3200])
            await asyncio.sleep(0.002)
        for _ in range(10):
            session.inbox.put(np.zeros(3200, dtype=np.int16))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
    session.hangup("test_done")
    await asyncio.wait_for(runner, 20)
    out: list[ev.OutboundEvent] = []
    while True:
        try:
            out.append(await asyncio.wait_for(session.outbox.get(), 1))
        except (EOFError, TimeoutError):
            break
    return session, out


def kinds(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


async def test_asr_crash_mid_call_is_reported_and_the_next_turn_works() -> None:
    hub = Hub(ScriptedASR([RuntimeError("decoder exploded"), "second try works"]), ToneTTS())
    try:
        session, out = await drive(hub, 2)
    finally:
        hub.close()
    errors = kinds(out, ev.ErrorEvent)
    assert [e.code for e in errors] == ["asr_failed"] and "decoder exploded" in errors[0].message
    finals = kinds(out, ev.TranscriptFinal)
    assert [f.text for f in finals] == ["second try works"]
    assert "You said second try works." in [t.text for t in kinds(out, ev.AgentTextDone)]
    assert session.end_reason == "test_done"
    assert isinstance(out[-1], ev.SessionEnded)


async def test_tts_crash_is_reported_and_the_call_goes_on() -> None:
    hub = Hub(ScriptedASR(["break the voice", "all good now"]), ToneTTS(fail_on="break"))
    try:
        _, out = await drive(hub, 2)
    finally:
        hub.close()
    assert [e.code for e in kinds(out, ev.ErrorEvent)] == ["reply_failed"]
    assert [f.text for f in kinds(out, ev.TranscriptFinal)] == ["break the voice", "all good now"]
    assert "You said all good now." in [t.text for t in kinds(out, ev.AgentTextDone)]


async def test_caller_speech_during_reply_interrupts_and_truncates_history() -> None:
    hub = Hub(ScriptedASR(["first question " * 8, "second"]), ToneTTS())
    try:
        session, out = await drive(hub, 2)
    finally:
        hub.close()
    interrupted = kinds(out, ev.AgentInterrupted)
    assert interrupted, [type(e).__name__ for e in out]
    agent_turns = [t for t in session.state.turns if t.role == "agent" and t.interrupted]
    assert agent_turns and len(agent_turns[0].heard) < len(agent_turns[0].text)
    # nothing of an interrupted turn's audio is left queued after the interruption
    idx = out.index(interrupted[0])
    assert not [e for e in out[idx:] if isinstance(e, ev.AgentAudio) and e.turn_id == interrupted[0].turn_id]
