"""CallSession: wires the stages of one call, owns every task, and turns failures into events.

Transports create a session, feed caller audio into :attr:`CallSession.inbox`, drain
:attr:`CallSession.outbox`, and await :meth:`CallSession.run` until the call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from agent.personas import Persona
from agent.policy import IntentPolicy, Policy
from agent.state import DialogueState
from models.cloning import VoiceConverter
from models.hub import ModelHub
from models.prosody import NumpyProsody
from models.vad import FRAME_SAMPLES, WebRtcVAD
from pipelines import events as ev
from pipelines.asr import ASRStage
from pipelines.audio import Framer, StreamResampler
from pipelines.distress import DistressTracker
from pipelines.emotion import EmotionConfig, EmotionEstimate, EmotionStage
from pipelines.playout import Outbox, Playout
from pipelines.tts import ClauseBuffer, TTSStage
from pipelines.turns import EndOfTurn, Paused, Started, TurnDetector
from pipelines.vad import VADStage
from settings import Settings
from storage import Store

log = logging.getLogger("parley.call")


class AudioInbox:
    """Caller audio waiting for the listener. Holds at most ``max_ms``; beyond that the oldest is dropped."""

    def __init__(self, rate: int, max_ms: int) -> None:
        self._q: deque[np.ndarray] = deque()
        self._samples = 0
        self._max = rate * max_ms // 1000
        self._ready = asyncio.Event()
        self.dropped_samples = 0
        self.closed = False

    def put(self, samples: np.ndarray) -> None:
        self._q.append(samples)
        self._samples += len(samples)
        while self._samples > self._max and len(self._q) > 1:
            old = self._q.popleft()
            self._samples -= len(old)
            self.dropped_samples += len(old)
        self._ready.set()

    async def get(self, timeout: float) -> np.ndarray | None:
        """Next chunk, or ``None`` after ``timeout`` seconds without audio. Raises EOFError once closed and empty."""
        while not self._q:
            if self.closed:
                raise EOFError
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        chunk = self._q.popleft()
        self._samples -= len(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True
        self._ready.set()


@dataclass(slots=True)
class _TurnClock:
    """Wall-clock marks for one caller turn, for ``turn.metrics``."""

    speech_end: float = 0.0  # wall time the last voiced frame arrived
    end_of_turn: float = 0.0
    final: float = 0.0
    first_text: float = 0.0
    first_audio: float = 0.0
    tts_first_clause: float = 0.0
    values: dict[str, float | None] = field(default_factory=dict)


def _ms(a: float, b: float) -> float | None:
    return round((b - a) * 1000, 1) if a and b else None


class CallSession:
    """One call: listener (resample -> VAD -> turns -> ASR), replies (policy -> TTS -> playout), barge-in."""

    def __init__(
        self,
        hub: ModelHub,
        settings: Settings,
        *,
        input_rate: int,
        language: str = "en",
        persona: Persona,
        policy: Policy | None = None,
        policy_factory: Callable[[CallSession], Policy] | None = None,
        store: Store | None = None,
        transport: str = "websocket",
        tts_cache: dict[tuple[str, int], np.ndarray] | None = None,
        session_id: str | None = None,
        metadata: dict[str, str] | None = None,
        voice: tuple[str, VoiceConverter] | None = None,
    ) -> None:
        self.id = session_id or uuid.uuid4().hex[:16]
        self.metadata = dict(metadata or {})
        self.hub = hub
        self.settings = settings
        self.input_rate = input_rate
        self.output_rate = settings.output_sample_rate or input_rate
        self.transport = transport
        self.persona = persona
        self.state = DialogueState(language=language, persona=persona.name)
        self.store = store
        self.policy: Policy = policy or (
            policy_factory(self)
            if policy_factory
            else IntentPolicy(persona, hub.embedder, offload=lambda fn: hub.aux_pool.run(1, fn))
        )
        self.inbox = AudioInbox(input_rate, settings.inbound_queue_ms)
        self.outbox = Outbox(settings.outbound_queue)
        self._resampler = StreamResampler(input_rate, 16000)
        self._framer = Framer(FRAME_SAMPLES)
        self.vad = VADStage(WebRtcVAD(settings.vad_mode), settings.speech_start_ms)
        self.turns = TurnDetector(settings.turn_silence_ms, settings.turn_max_silence_ms, int(settings.max_utterance_s * 1000))
        self.asr = ASRStage(
            hub.asr_for(language),
            hub.asr_pool,
            language,
            self._on_partial,
            settings.partial_interval_ms,
            settings.stage_timeout_s,
            on_speculative=self._on_speculative if hasattr(self.policy, "prefetch") else None,
        )
        self.emotion: EmotionStage | None = None
        if settings.emotion:
            self.emotion = EmotionStage(
                NumpyProsody(),
                lambda fn: (hub.emotion_pool or hub.aux_pool).run(2, fn, settings.stage_timeout_s),
                text=hub.text_emotion,
                model=hub.emotion_model,
                on_estimate=self._on_emotion,
                config=EmotionConfig(calibration_s=settings.emotion_calibration_s),
            )
        self.distress = DistressTracker(settings.emotion_alert_threshold, settings.emotion_alert_ms)
        self._emotion_log: list[dict[str, object]] = []  # not yet stored
        self.tts = TTSStage(
            hub.tts,
            hub.aux_pool,
            self.output_rate,
            tts_cache if tts_cache is not None else {},
            settings.stage_timeout_s,
            voice=voice,
        )
        self._tasks: set[asyncio.Task[object]] = set()
        self._finishing: set[asyncio.Task[object]] = set()  # turns being transcribed: never cancelled
        self._reply_task: asyncio.Task[None] | None = None
        self._playout: Playout | None = None
        self._turn_id = 0
        self._seq = 0
        self._clock = _TurnClock()
        self._last_voiced_wall = 0.0
        self._ended = asyncio.Event()
        self.end_reason = "hangup"
        self.turn_metrics: list[dict[str, float | None]] = []
        self._tool_seq = 0
        self._tool_args: dict[str, dict[str, object]] = {}

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Greet, listen until the caller hangs up (inbox closed) or :meth:`end` is called, then save."""
        self.outbox.put_nowait(ev.SessionCreated(self.id, self.output_rate, self.input_rate))
        if self.store is not None:
            await self.store.start_call(
                self.id, transport=self.transport, language=self.state.language, persona=self.persona.name, meta=self.metadata
            )
        self._start_reply(self._fixed(self.persona.greeting), greeting=True)
        listener = self._spawn(self._listen())
        try:
            await self._ended.wait()
        finally:
            listener.cancel()
            await asyncio.shield(self._shutdown())

    def end(self, reason: str) -> None:
        """End now: a reply in progress is cut, a turn in progress is dropped."""
        if not self._ended.is_set():
            self.end_reason = reason
        self._ended.set()

    def hangup(self, reason: str) -> None:
        """The caller is gone: stop taking audio, but finish (transcribe and save) a turn in progress."""
        if self.end_reason == "hangup":
            self.end_reason = reason
        self.inbox.close()

    def confirm_played(self, turn_id: int, played_ms: float) -> None:
        """The transport knows the caller has heard ``played_ms`` of reply ``turn_id`` (e.g. a Twilio mark echo)."""
        if self._playout is not None and self._playout.turn_id == turn_id:
            self._playout.confirm(played_ms)

    def dtmf(self, digit: str) -> None:
        """A keypad digit from the caller: appended to ``state.slots["dtmf"]``."""
        self.state.slots["dtmf"] = self.state.slots.get("dtmf", "") + digit

    def agent_event(self, payload: dict[str, object]) -> None:
        """An event from the policy (slots, tool calls, errors): sent to the caller and kept in storage."""
        if payload.get("type") == "error":
            self.outbox.put_nowait(ev.ErrorEvent(str(payload.get("code", "agent_error")), str(payload.get("message", ""))))
            return
        self.outbox.put_nowait(ev.AgentEvent(payload))
        if self.store is None:
            return
        if payload.get("type") == "agent.slots":
            self._finishing_add(self._spawn(self._store_call(self.store.set_slots(self.id, dict(self.state.slots)))))
        elif payload.get("type") == "agent.tool_result":
            self._tool_seq += 1
            args = self._tool_args.pop(str(payload.get("id")), {})
            row = self.store.add_tool_call(
                self.id, self._tool_seq, str(payload.get("name")), args, bool(payload.get("ok")),
                payload.get("result") or {}, payload.get("error"), float(payload.get("ms") or 0.0),  # type: ignore[arg-type]
            )  # fmt: skip
            self._finishing_add(self._spawn(self._store_call(row)))
        if payload.get("type") == "agent.tool_call":
            self._tool_args[str(payload.get("id"))] = payload.get("arguments") or {}  # type: ignore[assignment]

    async def _store_call(self, op: object) -> None:
        try:
            await asyncio.shield(op)  # type: ignore[arg-type]
        except Exception:
            log.exception("call %s: could not store agent state", self.id)

    def _on_speculative(self, text: str) -> None:
        prefetch = getattr(self.policy, "prefetch", None)
        if prefetch is not None and not self._ended.is_set():
            prefetch(self.state, text)

    def _spawn(self, coro: object) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _shutdown(self) -> None:
        # a turn the caller finished must still be transcribed and saved, whatever ended the call
        deadline = asyncio.get_running_loop().time() + self.settings.stage_timeout_s
        while pending := [t for t in self._finishing if not t.done()]:  # finishing work may start more
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            await asyncio.wait(pending, timeout=left)
        if self._reply_task is not None and not self._reply_task.done():
            await self._interrupt("hangup")
        for task in list(self._tasks):
            if task not in self._finishing or task.done():
                task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.asr.aclose()
        closer = getattr(self.policy, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
        if self.emotion is not None:
            await self.emotion.aclose()
        await self._save_emotions()
        if self.store is not None:
            try:
                await self.store.end_call(self.id, self.end_reason)
            except Exception:
                log.exception("call %s: could not record its end", self.id)
        self.outbox.put_nowait(ev.SessionEnded(self.end_reason))
        self.outbox.close()

    # ---- listening -------------------------------------------------------------------------

    async def _listen(self) -> None:
        idle_s = self.settings.turn_silence_ms / 1000
        try:
            while True:
                try:
                    chunk = await self.inbox.get(timeout=idle_s)
                except EOFError:
                    break
                if chunk is None:
                    if self.turns.state == "idle":
                        continue
                    # the client stopped sending mid-turn: time still passes for the caller
                    chunk = np.zeros(self.input_rate * self.settings.turn_silence_ms // 1000, dtype=np.int16)
                for frame in self._framer.push(self._resampler.process(chunk)):
                    await self._on_frame(frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("call %s: listener failed", self.id)
            self.outbox.put_nowait(ev.ErrorEvent("listener_failed", f"audio processing failed: {exc}"))
        # audio ended: finish a turn in progress so its words are kept
        if self.turns.state != "idle" and self.asr.active:
            with contextlib.suppress(Exception):
                await self._finish_turn(EndOfTurn(self.turns.last_voiced_ms, "hangup"), reply=False)
        self.end(self.end_reason)

    async def _on_frame(self, frame: np.ndarray) -> None:
        r = self.vad.process(frame)
        self.asr.push(frame, r.voiced)
        if self.emotion is not None:
            self.emotion.push(frame, r.voiced)
        if r.voiced:
            self._last_voiced_wall = time.perf_counter()
        for action in self.turns.on_frame(r):
            if isinstance(action, Started):
                self._on_started(action)
            elif isinstance(action, Paused):
                self._on_paused(action)
            elif isinstance(action, EndOfTurn):
                self._finish(action)
        if self.turns.state == "speaking" and r.t_ms - self.turns.last_voiced_ms >= self.settings.speculate_silence_ms:
            self.asr.speculate()
        if (
            self.turns.state == "speaking"
            and self._reply_task is not None
            and not self._reply_task.done()
            and self.turns.segment_voiced_ms >= self.settings.bargein_min_ms
        ):
            await self._interrupt("barge_in")

    def _on_started(self, action: Started) -> None:
        self.outbox.put_nowait(ev.SpeechStarted(action.t_ms))
        if action.resumed:
            self.asr.resumed()
            cancel = getattr(self.policy, "cancel_prefetch", None)
            if cancel is not None:
                cancel()
        else:
            self.asr.begin(action.t_ms)

    def _on_paused(self, action: Paused) -> None:
        self.vad.end_segment()
        self._clock = _TurnClock(speech_end=self._last_voiced_wall)
        self.outbox.put_nowait(ev.SpeechStopped(action.t_ms))
        self.asr.speculate()
        if self.hub.turn is not None:
            self._spawn(self._predict_turn(action.pause_id))

    async def _predict_turn(self, pause_id: int) -> None:
        assert self.hub.turn is not None
        audio = self.asr._audio(len(self.asr._frames))  # the utterance so far, 16 kHz float
        turn = self.hub.turn
        try:
            p = await self.hub.aux_pool.run(0, lambda: turn.completion_probability(audio), self.settings.stage_timeout_s)
        except Exception as exc:  # Smart Turn is an accelerator: silence still ends the turn
            log.warning("smart turn failed: %s", exc)
            return
        for action in self.turns.on_prediction(pause_id, p >= self.settings.smart_turn_threshold):
            if isinstance(action, EndOfTurn):
                self._finish(action)

    def _finish(self, action: EndOfTurn) -> None:
        self._finishing_add(self._spawn(self._finish_turn(action)))

    def _finishing_add(self, task: asyncio.Task[object]) -> None:
        """Work that must complete even when the call ends (transcripts, their emotion summaries)."""
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish_turn(self, action: EndOfTurn, reply: bool = True) -> None:
        clock = self._clock
        if not clock.speech_end:
            clock.speech_end = self._last_voiced_wall
        clock.end_of_turn = time.perf_counter()
        self.vad.end_segment()
        try:
            text = await self.asr.final()
        except Exception as exc:
            log.warning("call %s: final decode failed: %s", self.id, exc)
            self.outbox.put_nowait(ev.ErrorEvent("asr_failed", f"could not transcribe the last utterance: {exc}"))
            return
        clock.final = time.perf_counter()
        clock.values["end_of_speech_ms"] = _ms(clock.speech_end, clock.end_of_turn)
        clock.values["asr_final_ms"] = _ms(clock.end_of_turn, clock.final)
        if self.emotion is not None:
            self.emotion.on_text(text, self.asr.language, final=True)
            self._finishing_add(self._spawn(self._summarise_utterance()))
        if not any(ch.isalnum() for ch in text):
            return  # nothing said (Whisper writes "." or "..." for breath and noise)
        self.outbox.put_nowait(ev.TranscriptFinal(text, action.t_ms, self.asr.language))
        self.state.add_caller(text, action.t_ms)
        await self._save("caller", text, t_ms=action.t_ms)
        if not reply or self.inbox.closed or self._ended.is_set():
            return
        if self._reply_task is not None and not self._reply_task.done():
            await self._interrupt("new_turn")
        self._start_reply(self.policy.respond(self.state), clock=clock)

    def _on_partial(self, text: str, t_ms: int) -> None:
        self.outbox.put_nowait(ev.TranscriptPartial(text, t_ms))
        primer = getattr(self.policy, "prime_partial", None)
        if primer is not None and (self._reply_task is None or self._reply_task.done()):
            primer(self.state, text)
        if self.emotion is not None:
            self.emotion.on_text(text, self.asr.language, final=False)

    # ---- emotion ---------------------------------------------------------------------------

    def _on_emotion(self, est: EmotionEstimate) -> None:
        self.state.emotion = dict(est.scores)
        self._emit_emotion(est.to_json())
        alert = self.distress.update(est)
        if alert is not None:
            self._emit_emotion(alert.to_json())

    def _emit_emotion(self, payload: dict[str, object]) -> None:
        self.outbox.put_nowait(ev.EmotionEvent(payload))
        self._emotion_log.append(payload)

    async def _summarise_utterance(self) -> None:
        assert self.emotion is not None
        try:
            summary = await self.emotion.utterance_summary()
        except Exception as exc:  # emotion degrades; the call goes on
            log.warning("call %s: emotion summary failed: %s", self.id, exc)
            return
        self._emit_emotion(summary.to_json())
        await self._save_emotions()

    async def _save_emotions(self) -> None:
        batch, self._emotion_log = self._emotion_log, []
        if self.store is not None and batch:
            try:
                await asyncio.shield(self.store.add_emotions(self.id, batch))  # type: ignore[arg-type]
            except Exception:
                log.exception("call %s: could not save emotion", self.id)

    # ---- replying --------------------------------------------------------------------------

    @staticmethod
    async def _fixed(text: str) -> AsyncIterator[str]:
        yield text

    def _start_reply(self, pieces: AsyncIterator[str], *, greeting: bool = False, clock: _TurnClock | None = None) -> None:
        self._turn_id += 1
        playout = Playout(
            self.outbox, self._turn_id, self.output_rate, self.settings.output_frame_ms, self.settings.playback_lead_ms
        )
        self._playout = playout
        self._reply_task = asyncio.create_task(self._reply(pieces, playout, greeting, clock or _TurnClock()))

    async def _reply(self, pieces: AsyncIterator[str], playout: Playout, greeting: bool, clock: _TurnClock) -> None:
        turn_id = playout.turn_id
        spoken: list[str] = []
        queue: asyncio.Queue[tuple[str, np.ndarray] | Exception | None] = asyncio.Queue(maxsize=2)

        async def synthesise() -> None:
            try:
                buf = ClauseBuffer(eager_chars=0 if greeting else 16)
                t_policy = time.perf_counter()
                async with contextlib.aclosing(pieces):  # type: ignore[type-var]
                    async for piece in pieces:
                        if not clock.first_text:
                            clock.first_text = time.perf_counter()
                            clock.values["policy_first_text_ms"] = _ms(clock.final or t_policy, clock.first_text)
                        self.outbox.put_nowait(ev.AgentText(piece, turn_id))
                        spoken.append(piece)
                        for clause in buf.push(piece):
                            await queue.put(await self._speak(clause, greeting, clock))
                for clause in buf.flush():
                    await queue.put(await self._speak(clause, greeting, clock))
                await queue.put(None)
            except Exception as exc:  # handed to the player, which reports it
                await queue.put(exc)

        producer = asyncio.create_task(synthesise())
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                await playout.play(*item)
                if clock.first_audio == 0.0 and playout.first_audio_at:
                    clock.first_audio = playout.first_audio_at
            await producer
            self._record_metrics(turn_id, clock, greeting)
            text = "".join(spoken).strip()
            self.outbox.put_nowait(ev.AgentTextDone(text, turn_id))
            self.outbox.put_nowait(ev.AgentAudioDone(turn_id, int(playout.sent_ms)))
            await playout.wait_played()
            self.state.add_agent(text, text, False, self._intent())
            self._prime()
            await self._save("agent", text, metrics=clock.values)
            if not greeting:
                self._after_reply()
        except asyncio.CancelledError:
            producer.cancel()
            with contextlib.suppress(BaseException):
                await producer
            raise
        except Exception as exc:
            producer.cancel()
            log.exception("call %s: reply failed", self.id)
            self.outbox.put_nowait(ev.ErrorEvent("reply_failed", f"the agent could not answer: {exc}"))

    def _prime(self) -> None:
        primer = getattr(self.policy, "prime", None)
        if primer is not None and not self._ended.is_set():
            primer(self.state)

    def _after_reply(self) -> None:
        """The reply has been heard: carry out its side effect (hand over to a person, hang up)."""
        reply = getattr(self.policy, "last_reply", None)
        effect = getattr(reply, "effect", "none")
        if effect == "transfer":
            self.outbox.put_nowait(
                ev.AgentEvent(
                    {"type": "agent.transfer", "reason": "transfer_to_human", "slots": dict(self.state.slots), "call_id": self.id}
                )
            )
            self.end("transferred")
        elif effect == "end_call":
            self.end("agent_ended")

    async def _speak(self, clause: str, greeting: bool, clock: _TurnClock) -> tuple[str, np.ndarray]:
        t0 = time.perf_counter()
        pcm = await self.tts.speak(clause, cache=greeting)
        if "tts_first_audio_ms" not in clock.values:
            clock.values["tts_first_audio_ms"] = _ms(t0, time.perf_counter())
        return clause, pcm

    def _intent(self) -> str | None:
        reply = getattr(self.policy, "last_reply", None)
        return reply.intent if reply is not None else None

    def _record_metrics(self, turn_id: int, clock: _TurnClock, greeting: bool) -> None:
        """Once the whole reply is generated: latency of each stage, and the LLM's when it answered."""
        if greeting or not clock.speech_end:
            return
        clock.values["voice_to_voice_ms"] = _ms(clock.speech_end, clock.first_audio)
        reply = getattr(self.policy, "last_reply", None)
        if reply is not None and getattr(reply, "source", "") == "llm":
            clock.values["llm_ttft_ms"] = reply.llm_ttft_ms
            clock.values["llm_tokens_per_s"] = reply.llm_tokens_per_s
            clock.values["llm_preempted"] = 1.0 if reply.preempted else 0.0
            if reply.answer_at:  # the answer's own first words (after any acknowledgement)
                clock.values["llm_answer_ms"] = _ms(clock.speech_end, reply.answer_at)
            clock.values["ack"] = 1.0 if reply.ack else 0.0
            if reply.llm_first_token_at:
                # > 0: the first token existed before the end of turn was declared
                clock.values["llm_ahead_ms"] = _ms(reply.llm_first_token_at, clock.end_of_turn)
        metrics = dict(clock.values)
        self.turn_metrics.append(metrics)
        self.outbox.put_nowait(ev.TurnMetrics(turn_id, metrics))

    async def _interrupt(self, reason: str) -> None:
        """Barge-in: cancel the reply, drop its queued audio, tell the client, keep only what was heard."""
        task, playout = self._reply_task, self._playout
        if task is None or task.done() or playout is None:
            return
        played = playout.played_ms()
        task.cancel()
        self.outbox.flush_audio(playout.turn_id)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, timeout=2)
        heard = playout.heard_text(played)
        if playout.sent_ms <= 0:
            return  # nothing was said yet: the caller simply kept talking
        self.outbox.put_nowait(ev.AgentInterrupted(playout.turn_id, played, heard))
        intended = "".join(self._pending_text(playout.turn_id))
        self.state.add_agent(intended, heard, True, self._intent())
        self._prime()
        await self._save(
            "agent", intended, heard=heard, interrupted=True, metrics={"interrupted_by": reason, "played_ms": played}
        )

    def _pending_text(self, turn_id: int) -> list[str]:
        return [c.text + " " for c in self._playout._clauses] if self._playout and self._playout.turn_id == turn_id else []

    async def _save(self, role: str, text: str, **kw: object) -> None:
        if self.store is None:
            return
        self._seq += 1
        try:
            await asyncio.shield(self.store.add_turn(self.id, self._seq, role, text, **kw))  # type: ignore[arg-type]
        except Exception:
            log.exception("call %s: could not save a turn", self.id)
