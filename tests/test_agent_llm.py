"""The agent with a real LLM, end to end over /ws/call.

* The OpenAI-compatible path: the test starts a real llama.cpp server (``python -m
  llama_cpp.server``) with the bundled Qwen2.5-1.5B GGUF, and Parley talks to it through
  ``PARLEY_LLM_BASE_URL`` with the ``openai`` client. A scripted caller (Piper speech, decoded by
  the real ASR) gives an order number over two turns, asks a free question, asks for a
  callback, and says goodbye.
* The default path: Parley starts and supervises its own local server (SmolLM2 here, for speed),
  answers a free question with it, and restarts the server when it dies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.caller import Caller
from models.tts import PiperTTS
from tests.conftest import ServerProcess, get_json, wait_call
from tests.speech import piper, reply_to, speech

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def voice() -> PiperTTS:
    return piper()


def transcript(events: list[dict[str, Any]]) -> str:
    keep = (
        "transcript.final",
        "agent.text.done",
        "agent.tool_call",
        "agent.tool_result",
        "agent.slots",
        "error",
        "agent.interrupted",
    )
    return "\n".join(str(e) for e in events if e.get("type") in keep)


def of_turn(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == kind]


async def test_scripted_call_fills_slots_and_uses_tools(llm_parley: ServerProcess, voice: PiperTTS) -> None:
    caller = Caller(f"{llm_parley.ws}/ws/call")
    log = await caller.connect()
    try:
        greeting = await caller.wait_for("agent.audio.done", 1, timeout=30)
        await caller.listen(greeting["duration_ms"] / 1000 + 0.3)
        ask = await reply_to(caller, speech(voice, "Hi, my package has not arrived yet."))
        go_on = await reply_to(caller, speech(voice, "The order number is four five seven."))
        found = await reply_to(caller, speech(voice, "Eight nine two."))
        free = await reply_to(caller, speech(voice, "Do you also ship to Canada?"))
        await reply_to(
            caller, speech(voice, "Can you call me back tomorrow? My number is five five five one two three four five six seven.")
        )
        await caller.say(speech(voice, "That's all, thank you. Goodbye!"))
        ended = await caller.wait_for("session.ended", timeout=60)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{transcript([e for _, e in log.events])}") from None
    finally:
        await caller.close(end=False)
    events = [e for _, e in log.events]
    story = transcript(events)
    assert "order number" in ask.lower(), story
    assert go_on == "Go on, I have four five seven so far.", story
    assert "four five seven eight nine two" in found and "has shipped" in found, story
    assert free and ended["reason"] == "agent_ended", story

    calls = [(e["name"], e["source"]) for e in of_turn(events, "agent.tool_call")]
    assert calls == [("lookup_order", "fast_path"), ("schedule_callback", "fast_path"), ("end_call", "fast_path")], story
    results = {e["name"]: e for e in of_turn(events, "agent.tool_result")}
    assert results["lookup_order"]["ok"] and results["lookup_order"]["result"]["status"] == "shipped"
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    slots = of_turn(events, "agent.slots")[-1]["slots"]
    assert of_turn(events, "agent.slots")[0]["slots"] == {"issue_type": "order_status"}
    # the phone number is as the ASR heard it: digits, starting as spoken
    assert slots["order_number"] == "457892" and slots["date"] == tomorrow and slots["callback"] == "booked", story
    assert slots["phone"].startswith("555") and 10 <= len(slots["phone"]) <= 11, story
    assert results["schedule_callback"]["result"] | {"callback_id": 0} == {
        "scheduled": True,
        "callback_id": 0,
        "phone": slots["phone"],
        "when": tomorrow,
    }
    # the free question was answered by the LLM, measured in turn.metrics
    llm_turns = [m for m in of_turn(events, "turn.metrics") if m.get("llm_ttft_ms") is not None]
    assert llm_turns and all(m["llm_ttft_ms"] > 0 and (m["llm_tokens_per_s"] or 0) > 0 for m in llm_turns), story

    stored = await wait_call(llm_parley, log.session_id, lambda c: c["ended_at"] is not None)
    assert stored["slots"] == slots and stored["end_reason"] == "agent_ended"
    assert [t["name"] for t in stored["tool_calls"]] == ["lookup_order", "schedule_callback", "end_call"]
    assert stored["tool_calls"][0]["arguments"] == {"order_number": "457892"}
    assert [(c["phone"], c["when"]) for c in stored["callbacks"]] == [(slots["phone"], tomorrow)]


async def test_transfer_to_human_ends_the_ai_part(llm_parley: ServerProcess, voice: PiperTTS) -> None:
    caller = Caller(f"{llm_parley.ws}/ws/call")
    log = await caller.connect()
    greeting = await caller.wait_for("agent.audio.done", 1, timeout=30)
    await caller.listen(greeting["duration_ms"] / 1000 + 0.3)
    await caller.say(speech(voice, "I want to speak to a manager."))
    transfer = await caller.wait_for("agent.transfer", timeout=60)
    ended = await caller.wait_for("session.ended", timeout=30)
    await caller.close(end=False)
    assert ended["reason"] == "transferred" and transfer["call_id"] == log.session_id
    assert [e["name"] for e in of_turn([e for _, e in log.events], "agent.tool_call")] == ["transfer_to_human"]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Parley with no LLM configuration: it starts its own llama.cpp server (SmolLM2 for speed)."""
    srv = ServerProcess(tmp_path_factory.mktemp("parley-local"), PARLEY_LLM_LOCAL_MODEL="smollm2", PARLEY_LLM_TEMPERATURE="0")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def llama_pid(srv: ServerProcess) -> int:
    found = subprocess.run(["pgrep", "-f", "llama_cpp.server.*--port", "-P", str(srv.pid())], capture_output=True, text=True)
    out = found.stdout.split()
    assert out, "no llama.cpp server child"
    return int(out[0])


async def test_default_local_llm_is_started_supervised_and_answers(local: ServerProcess, voice: PiperTTS) -> None:
    health = get_json(f"{local.url}/health")
    assert health["policy"] == "llm" and health["llm"]["local"] and health["warm_ms"]["llm"] > 0
    os.kill(llama_pid(local), signal.SIGKILL)  # the model server dies: Parley restarts it
    deadline = time.time() + 120
    while get_json(f"{local.url}/health")["llm"]["restarts"] < 1 and time.time() < deadline:
        await asyncio.sleep(0.5)
    assert get_json(f"{local.url}/health")["llm"]["restarts"] == 1

    caller = Caller(f"{local.ws}/ws/call")
    log = await caller.connect()
    greeting = await caller.wait_for("agent.audio.done", 1, timeout=30)
    await caller.listen(greeting["duration_ms"] / 1000 + 0.3)
    deadline = time.time() + 60  # the restarted server may still be loading: wait for an answer, not a crash
    reply = await reply_to(caller, speech(voice, "What is the weather usually like in spring?"))
    await caller.close()
    metrics = of_turn([e for _, e in log.events], "turn.metrics")
    assert reply and time.time() < deadline
    assert metrics and metrics[-1].get("llm_ttft_ms") is not None, metrics


def test_a_broken_llm_set_up_degrades_to_templates(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, PARLEY_LLM_LOCAL_MODEL=str(tmp_path / "missing.gguf"))
    try:
        srv.wait_ready()
        health = get_json(f"{srv.url}/health")
    finally:
        srv.stop()
    assert health["status"] == "ok" and health["llm"] is None
    assert health["policy"] == "intent (LLM unavailable)" and "missing.gguf" in health["llm_error"]
