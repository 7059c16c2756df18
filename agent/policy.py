"""Policies decide what the agent says next. The interface streams text so an LLM can plug in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from agent.personas import Persona
from agent.state import DialogueState
from models.embedding import TextEmbedder

Offload = Callable[[Callable[[], Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Reply:
    """What a policy decided for the last turn: intent, side effect, how the answer was made."""

    intent: str | None
    confidence: float
    effect: str = "none"  # none | transfer | end_call: what the runner does once the reply has played
    source: str = "fast_path"  # fast_path | llm
    preempted: bool = False  # the LLM started on a speculative transcript and it was adopted
    llm_ttft_ms: float | None = None
    llm_tokens_per_s: float | None = None
    llm_first_token_at: float | None = None  # perf_counter() of the first LLM token
    ack: str | None = None  # the acknowledgement spoken before the answer, if any
    answer_at: float | None = None  # perf_counter() of the answer's first speakable words (after any ack)


class Policy(Protocol):
    """Streams the next agent reply for ``state`` as text pieces (clauses or tokens).

    Callers must consume the iterator to the end or cancel the task that consumes it;
    ``last_reply`` then describes the decision.
    """

    last_reply: Reply | None

    def respond(self, state: DialogueState) -> AsyncIterator[str]: ...


class IntentPolicy:
    """Fast local customer-service policy: nearest example phrase (multilingual e5) -> template.

    Below ``threshold`` similarity it answers with the persona's fallback. Costs one embedding
    (~10-25 ms) per turn. Emotion, when known, prefixes an apology for an upset caller.
    """

    def __init__(
        self,
        persona: Persona,
        embedder: TextEmbedder,
        offload: Offload | None = None,
        threshold: float = 0.84,
    ) -> None:
        self.persona = persona
        self._embedder = embedder
        self._threshold = threshold
        self._offload = offload
        self._labels: list[str] = []
        examples: list[str] = []
        for intent in persona.intents:
            for ex in intent.examples:
                self._labels.append(intent.name)
                examples.append(ex)
        self._matrix = embedder.query(examples) if examples else np.zeros((0, 1), np.float32)
        self._replies = {i.name: i.replies for i in persona.intents}
        self._used: dict[str, int] = {}
        self.last_reply: Reply | None = None

    def classify(self, text: str) -> Reply:
        """Blocking intent classification (one embedding)."""
        if not text.strip() or not self._labels:
            return Reply(None, 0.0)
        vec = self._embedder.query([text])[0]
        scores = self._matrix @ vec
        best = int(np.argmax(scores))
        score = float(scores[best])
        return Reply(self._labels[best] if score >= self._threshold else None, score)

    def _pick(self, options: tuple[str, ...], key: str) -> str:
        n = self._used.get(key, 0)
        self._used[key] = n + 1
        return options[n % len(options)]

    async def aclassify(self, text: str) -> Reply:
        """:meth:`classify` off the event loop (on the offload pool when one was given)."""
        if self._offload is not None:
            reply: Reply = await self._offload(lambda: self.classify(text))
            return reply
        return await asyncio.get_running_loop().run_in_executor(None, self.classify, text)

    async def respond(self, state: DialogueState) -> AsyncIterator[str]:
        reply = await self.aclassify(state.last_caller_text())
        self.last_reply = reply
        upset = state.emotion is not None and max(state.emotion.get("angry", 0.0), state.emotion.get("sad", 0.0)) > 0.5
        if upset:
            yield "I'm sorry you're having this trouble. "
        if reply.intent is None:
            yield self._pick(self.persona.fallback, "_fallback")
        else:
            yield self._pick(self._replies[reply.intent], reply.intent)
