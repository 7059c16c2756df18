"""The agent's slots and tool calls on the supervisor dashboard and the caller page, in a real
headless Chromium, with a real call to Parley's LLM policy behind a real llama.cpp server.

A scripted caller (Piper speech, decoded by the real ASR) reports a missing package and gives its
order number; the dashboard shows the filled slots in its Details panel and the ``lookup_order``
call in the timeline while the call is live, and again from the stored call once it has ended.
Events the real call does not produce here (a failed tool, a transfer) are handed to the pages
as if the server had sent them, to check how they are marked.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from bench.caller import Caller
from models.tts import PiperTTS
from tests.browser import CHROMIUM, SOCKET_SPY, Page, chromium, deliver, open_tab
from tests.conftest import ARTIFACTS, ServerProcess
from tests.speech import piper, reply_to, speech

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (Debian package 'chromium')")

STATS = "JSON.parse(JSON.stringify(window.supervisorStats))"
CALLER_STATS = "JSON.parse(JSON.stringify(window.parleyStats))"
ORDER = "457892"
SLOTS = "[...document.querySelectorAll('[data-testid=slot]')].map(e => [e.dataset.slot, e.querySelector('dd').textContent])"
TOOLS = """[...document.querySelectorAll('[data-testid=tool-call]')].map(e => ({
  name: e.dataset.tool, status: e.dataset.status, text: e.textContent,
  args: e.querySelector('[data-testid=tool-args]')?.textContent,
}))"""


def q(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})"


@pytest.fixture(scope="module")
def voice() -> PiperTTS:
    return piper()


def silent_wav(path: Path) -> Path:
    """The fake microphone: one second of silence (these pages' calls are scripted or not needed)."""
    sf.write(str(path), np.zeros(16000, np.int16), 16000, subtype="PCM_16")
    return path


def slot_map(pairs: list[list[str]]) -> dict[str, str]:
    return {k: v for k, v in pairs}


async def lookup_shown(page: Page, what: str) -> list[dict[str, Any]]:
    """The timeline's tool lines, once one for ``lookup_order`` has finished."""
    return list(
        await page.wait_for(TOOLS, lambda ts: any(t["name"] == "lookup_order" and t["status"] != "pending" for t in ts), 15, what)
    )


def check_lookup(tools: list[dict[str, Any]]) -> None:
    lookup = [t for t in tools if t["name"] == "lookup_order"]
    assert len(lookup) == 1 and lookup[0]["status"] == "ok", tools
    assert ORDER in lookup[0]["args"] and "ok" in lookup[0]["text"] and " ms" in lookup[0]["text"], lookup


async def place_call(page: Page, caller: Caller, tts: PiperTTS) -> list[dict[str, Any]]:
    """The caller reports a missing package and gives its order number; returns the call's events."""
    call_id = caller.log.session_id
    await page.wait_for(f"{STATS}.selected", lambda s: s == call_id, 15, "the new call to be selected")
    greeting = await caller.wait_for("agent.audio.done", 1, timeout=30)
    await caller.listen(greeting["duration_ms"] / 1000 + 0.3)
    first, second = await asyncio.gather(
        asyncio.to_thread(speech, tts, "Hi, my package has not arrived yet."),
        asyncio.to_thread(speech, tts, "The order number is four five seven eight nine two."),
    )
    await reply_to(caller, first)
    await reply_to(caller, second)
    await caller.wait_for("agent.tool_result", timeout=30)
    return [e for _, e in caller.log.events]


async def check_live(page: Page, call_id: str, events: list[dict[str, Any]]) -> None:
    """Details and timeline follow the live call's agent.slots and tool events."""
    story = [e for e in events if e.get("type") in ("transcript.final", "agent.slots", "agent.tool_call", "agent.tool_result")]
    result = next(e for e in events if e.get("type") == "agent.tool_result")
    assert result["name"] == "lookup_order" and result["ok"], story
    slots = [e["slots"] for e in events if e.get("type") == "agent.slots"][-1]
    assert slots["order_number"] == ORDER, story
    expected = {k: str(v).replace("_", " ") for k, v in slots.items()}  # shown as words: order_status -> order status
    await page.wait_for(SLOTS, lambda s: expected.items() <= slot_map(s).items(), 15, f"the slots {expected}")
    check_lookup(await lookup_shown(page, "the lookup_order line"))
    assert (await page.eval(STATS))["calls"][call_id]["toolCalls"] >= 1


async def check_archive(page: Page, call_id: str) -> None:
    """The ended call, opened from the recent list, shows the stored slots and tool call."""
    recent = f"[data-testid=recent-call][data-call-id='{call_id}'] button"
    live = f"[data-testid=live-call][data-call-id='{call_id}']"
    await page.wait_for(f"!{q(live)} && !!{q(recent)}", bool, 15, "the call to move to the recent list")
    await page.eval(f"{q(recent)}.click()")
    await page.wait_for(f"{q('[data-testid=detail]')}.dataset.source", lambda s: s == "archive", 10, "the stored call")
    pairs = await page.wait_for(SLOTS, lambda s: slot_map(s).get("order_number") == ORDER, 5, "the stored slots")
    assert slot_map(pairs)["order_number"] == ORDER
    check_lookup(await lookup_shown(page, "the stored lookup_order line"))
    # the tool call sits after the caller line that gave the number and before the agent's answer
    order = await page.eval("[...document.querySelectorAll('#timeline > li')].map(e => e.dataset.testid)")
    at = order.index("tool-call")
    assert order[at - 1] == "caller-final" and "agent-text" in order[at + 1 :], order


async def check_marks(page: Page) -> None:
    """A failed tool call is marked as failed, with its error; a transfer leaves a marker."""
    fake = "c-marks"
    started = {
        "type": "call.started",
        "call_id": fake,
        "transport": "websocket",
        "language": "en",
        "persona": "",
        "t": time.time(),
    }
    await deliver(page, started)
    await page.wait_for(f"!!{q(f'[data-testid=live-call][data-call-id={fake}] button')}", bool, 5, "the injected call")
    await page.eval(f"{q(f'[data-testid=live-call][data-call-id={fake}] button')}.click()")
    await page.wait_for(f"{STATS}.selected", lambda s: s == fake, 5, "the injected call to be selected")
    call = {"id": "t-1", "name": "schedule_callback", "arguments": {"phone": "12", "when": "asap"}, "source": "llm"}
    await deliver(page, {"type": "agent.tool_call", **call, "call_id": fake})
    pending = await page.wait_for(TOOLS, lambda ts: len(ts) == 1, 5, "the pending tool line")
    assert pending[0]["status"] == "pending", pending
    error = "schedule_callback: phone number needs 7 to 15 digits"
    result = {
        "type": "agent.tool_result",
        "id": "t-1",
        "name": "schedule_callback",
        "ok": False,
        "result": {},
        "error": error,
        "ms": 0.4,
    }
    await deliver(page, {**result, "effect": "none", "source": "llm", "call_id": fake})
    failed = await page.wait_for(TOOLS, lambda ts: ts[0]["status"] == "failed", 5, "the failed tool line")
    assert error in failed[0]["text"] and "failed" in failed[0]["text"].lower(), failed
    assert await page.eval(f"{q('[data-testid=tool-call]')}.classList.contains('failed')")
    slots = {"issue_type": "human", "order_number": ORDER}
    await deliver(page, {"type": "agent.transfer", "reason": "transfer_to_human", "slots": slots, "call_id": fake})
    text = await page.wait_for(f"{q('[data-testid=transfer]')}?.textContent", bool, 5, "the transfer marker")
    assert "person" in text, text
    assert slot_map(await page.eval(SLOTS)) == slots


async def test_supervisor_shows_slots_and_tool_calls(llm_parley: ServerProcess, voice: PiperTTS, tmp_path: Path) -> None:
    async with chromium(tmp_path, silent_wav(tmp_path / "silence.wav")) as cdp:
        page = await open_tab(cdp, f"{llm_parley.url}/supervisor", "window.supervisorStats", init_script=SOCKET_SPY)
        await page.wait_for(f"{STATS}.connected", bool, 15, "the monitor connection")
        caller = Caller(f"{llm_parley.ws}/ws/call")
        call_id = (await caller.connect()).session_id
        try:
            events = await place_call(page, caller, voice)
            await check_live(page, call_id, events)
        finally:
            await caller.close()
        await check_archive(page, call_id)
        await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
        await page.screenshot(ARTIFACTS / "supervisor-agent.png")
        await check_marks(page)
        assert not [line for line in page.log() if line.startswith("exception")], page.log()


async def test_caller_page_shows_tool_calls_and_llm_latency(llm_parley: ServerProcess, tmp_path: Path) -> None:
    async with chromium(tmp_path, silent_wav(tmp_path / "silence.wav")) as cdp:
        page = await open_tab(
            cdp, f"{llm_parley.url}/?transport=websocket", "window.parleyStats", width=900, init_script=SOCKET_SPY
        )
        await page.eval(f"{q('[data-testid=call-button]')}.click()", gesture=True)
        await page.wait_for(f"{CALLER_STATS}.sessionId", bool, 20, "the call to start")
        call = {"id": "fp-9", "name": "lookup_order", "arguments": {"order_number": ORDER}, "source": "fast_path"}
        await deliver(page, {"type": "agent.tool_call", **call})
        line = f"{q('[data-testid=tool-call]')}"
        assert "Looking up order 457892" in await page.wait_for(f"{line}?.textContent", bool, 5, "the tool line")
        result = {"found": True, "order_number": ORDER, "status": "shipped", "items": ["kettle"], "eta": ""}
        await deliver(
            page,
            {
                "type": "agent.tool_result",
                "id": "fp-9",
                "name": "lookup_order",
                "ok": True,
                "result": result,
                "error": None,
                "ms": 6.5,
                "effect": "none",
            },
        )
        text = await page.wait_for(f"{line}.textContent", lambda t: "Looked up" in t, 5, "the tool result")
        assert text == "Looked up order 457892 — shipped" and await page.eval(f"{line}.dataset.status") == "ok"
        hidden = "getComputedStyle(document.querySelector('thead [data-key=llm]')).display"
        assert await page.eval(hidden) == "none"  # no LLM figures yet: no column
        metrics = {
            "type": "turn.metrics",
            "turn_id": 7,
            "voice_to_voice_ms": 900.0,
            "llm_ttft_ms": 212.4,
            "llm_tokens_per_s": 41.6,
            "llm_preempted": 0.0,
        }
        await deliver(page, metrics)
        cell = "[data-testid=turn-metrics]:last-child [data-key=llm]"
        shown = await page.wait_for(f"{q(cell)}?.textContent", bool, 5, "the LLM figures")
        assert shown.startswith("212") and "42 tok/s" in shown and await page.eval(hidden) != "none", shown
        assert [e["name"] for e in (await page.eval(CALLER_STATS))["toolCalls"]] == ["lookup_order"]
        await page.eval(f"{q('[data-testid=call-button]')}.click()")
        await page.wait_for(f"{CALLER_STATS}.state", lambda s: s == "ended", 15, "the hang-up")
        await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
        await page.screenshot(ARTIFACTS / "caller-agent.png")
        assert not [entry for entry in page.log() if entry.startswith("exception")], page.log()
