"""LLM adapter: any OpenAI-compatible chat endpoint, streamed, with tool calls.

``OpenAIChatLLM.stream`` yields text deltas and complete tool calls. Tool calls arrive either
natively (``delta.tool_calls``, as OpenAI and vLLM send them) or as Hermes/Qwen-style
``<tool_call>{...}</tool_call>`` blocks in the text (what a GGUF chat template makes a local
model write through llama.cpp); both come out as :class:`ToolCall`.

Connection errors, timeouts, rate limits and 5xx answers are retried with backoff, but only
before the first delta: once words have been spoken a retry would repeat them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai

from pipelines.errors import ModelError, ModelTimeout

log = logging.getLogger("parley.llm")

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One complete tool call. ``arguments`` is the raw JSON text the model wrote (may be malformed)."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class LLMStats:
    """Filled in as a stream runs: time to first token and decode speed."""

    started: float = 0.0
    first_token: float = 0.0
    finished: float = 0.0
    tokens: int = 0
    attempts: int = 0

    @property
    def ttft_ms(self) -> float | None:
        return round((self.first_token - self.started) * 1000, 1) if self.first_token else None

    @property
    def tokens_per_s(self) -> float | None:
        span = self.finished - self.first_token
        if not self.first_token or self.tokens < 2 or span <= 0:
            return None
        return round((self.tokens - 1) / span, 1)


LLMDelta = TextDelta | ToolCall


class ChatLLM(Protocol):
    """What the policy needs from a language model."""

    model: str

    def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None, stats: LLMStats
    ) -> AsyncIterator[LLMDelta]: ...


@dataclass(frozen=True, slots=True)
class LLMConfig:
    base_url: str
    api_key: str = "not-needed"
    model: str = "parley-local"
    timeout_s: float = 20.0
    first_token_timeout_s: float = 10.0
    retries: int = 2
    max_tokens: int = 120
    temperature: float = 0.0
    extra_body: dict[str, Any] = field(default_factory=dict)


_RETRYABLE = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError, openai.InternalServerError)


class ToolCallParser:
    """Splits a text stream into plain text and ``<tool_call>...</tool_call>`` blocks.

    Push pieces with :meth:`push`; text that might be the start of a tag is held back until it
    is known. Call :meth:`flush` at the end of the stream.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._in_call = False
        self._bare = False  # the reply opened with "{": maybe a tool call written without tags
        self._started = False
        self._n = 0

    def push(self, piece: str) -> list[LLMDelta]:
        self._buf += piece
        if not self._started and self._buf.strip():
            self._started = True
            self._bare = self._buf.lstrip().startswith("{")
        if self._bare:
            return []
        out: list[LLMDelta] = []
        while self._buf:
            if self._in_call:
                end = self._buf.find(_CLOSE)
                if end < 0:
                    break
                out.append(self._call(self._buf[:end]))
                self._buf = self._buf[end + len(_CLOSE) :]
                self._in_call = False
                continue
            start = self._buf.find(_OPEN)
            if start >= 0:
                if start:
                    out.append(TextDelta(self._buf[:start]))
                self._buf = self._buf[start + len(_OPEN) :]
                self._in_call = True
                continue
            keep = _partial_suffix(self._buf, _OPEN)
            text, self._buf = self._buf[: len(self._buf) - keep], self._buf[len(self._buf) - keep :]
            if text:
                out.append(TextDelta(text))
            break
        return out

    def flush(self) -> list[LLMDelta]:
        buf, self._buf = self._buf, ""
        if self._bare:
            self._bare = False
            call = self._call(buf.strip().replace("{{", "{").replace("}}", "}"))
            return [call] if call.name else [TextDelta(buf)]
        if self._in_call:
            self._in_call = False
            return [self._call(buf)] if buf.strip() else []
        return [TextDelta(buf)] if buf else []

    def _call(self, body: str) -> ToolCall:
        self._n += 1
        try:
            obj = json.loads(body)
            name = str(obj.get("name", ""))
            args = obj.get("arguments", {})
            return ToolCall(f"text-{self._n}", name, args if isinstance(args, str) else json.dumps(args))
        except (json.JSONDecodeError, AttributeError):
            return ToolCall(f"text-{self._n}", "", body.strip())  # malformed: the registry reports it


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class OpenAIChatLLM:
    """Streams chat completions from an OpenAI-compatible endpoint with the ``openai`` client."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.model = config.model
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url, api_key=config.api_key or "not-needed", timeout=config.timeout_s, max_retries=0
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def prime(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None) -> None:
        """Have the server evaluate ``messages`` now (one token generated) so the next turn's prompt is cached.

        Worth it only against a server with a prompt cache (llama.cpp); failures are ignored.
        """
        kwargs: dict[str, Any] = {"model": self.config.model, "messages": list(messages), "max_tokens": 1}
        if tools:
            kwargs["tools"] = list(tools)
        try:
            await self._client.chat.completions.create(**kwargs)
        except openai.APIError as exc:
            log.debug("prime failed: %s", exc)

    async def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None, stats: LLMStats
    ) -> AsyncIterator[LLMDelta]:
        stats.started = time.perf_counter()
        chunks = await self._open(messages, tools, stats)
        parser = ToolCallParser()
        native: dict[int, dict[str, str]] = {}
        try:
            async for chunk in _first_within(chunks, self.config.first_token_timeout_s):
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                if delta.content:
                    self._count(stats)
                    for item in parser.push(delta.content):
                        yield item
                for tc in delta.tool_calls or []:
                    self._count(stats)
                    slot = native.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] = tc.id or slot["id"]
                    if tc.function is not None:
                        slot["name"] += tc.function.name or ""
                        slot["arguments"] += tc.function.arguments or ""
            for item in parser.flush():
                yield item
            for i, call in sorted(native.items()):
                yield ToolCall(call["id"] or f"call-{i}", call["name"], call["arguments"] or "{}")
        except TimeoutError:
            raise ModelTimeout(f"LLM sent no token within {self.config.first_token_timeout_s:.0f} s") from None
        except openai.APIError as exc:
            raise ModelError(f"LLM stream failed: {exc}", retryable=isinstance(exc, _RETRYABLE)) from exc
        finally:
            stats.finished = time.perf_counter()
            await chunks.close()

    @staticmethod
    def _count(stats: LLMStats) -> None:
        if not stats.first_token:
            stats.first_token = time.perf_counter()
        stats.tokens += 1

    async def _open(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None, stats: LLMStats) -> Any:
        """Open the stream, retrying transient failures with backoff (0.2 s, 0.4 s, ...)."""
        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "messages": list(messages),
            "stream": True,
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
        }
        if tools:
            kwargs["tools"] = list(tools)
        if self.config.extra_body:
            kwargs["extra_body"] = self.config.extra_body
        for attempt in range(self.config.retries + 1):
            stats.attempts = attempt + 1
            try:
                return await self._client.chat.completions.create(**kwargs)
            except _RETRYABLE as exc:
                if attempt == self.config.retries:
                    kind = "timed out" if isinstance(exc, openai.APITimeoutError) else "failed"
                    raise ModelError(f"LLM request {kind} after {attempt + 1} attempts: {exc}", retryable=True) from exc
                log.warning("LLM request failed (%s); retrying", exc)
                await asyncio.sleep(0.2 * 2**attempt)
            except openai.APIStatusError as exc:
                raise ModelError(f"LLM endpoint refused the request: {exc}") from exc
        raise AssertionError("unreachable")


async def _first_within(chunks: Any, timeout: float) -> AsyncIterator[Any]:
    """Iterate ``chunks``, allowing ``timeout`` seconds between consecutive chunks."""
    it = chunks.__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(it.__anext__(), timeout)
        except StopAsyncIteration:
            return
        yield chunk
