"""The supervisor dashboard in a real headless Chromium, watching a real call on a real server.

A scripted caller (``bench.caller.Caller``) streams a LibriVox clip through ``/ws/call`` while the
page follows ``/ws/monitor``: the call is listed and selected, its transcript and reply appear,
a dropped monitor connection is restored from the snapshot, the server's emotion estimates reach
the plot, the caller then gets angry (Piper-spoken angry sentences) and the real ``emotion.alert``
raises a badge until it is acknowledged, and once the call ends it is listed with the finished
calls and its stored timeline (emotion included) opens.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.caller import Caller, librivox_clips, load_pcm
from models import manifest
from models.device import select_device
from models.tts import PiperTTS
from pipelines.audio import resample
from tests.browser import CHROMIUM, SOCKET_SPY, Page, chromium, open_tab
from tests.conftest import ARTIFACTS, ServerProcess

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (Debian package 'chromium')")

STATS = "JSON.parse(JSON.stringify(window.supervisorStats))"


def q(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})"


def texts(selector: str) -> str:
    return f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent)"


# Counts caller-partial lines added to the timeline (each is later replaced by its final).
COUNT_PARTIALS = """
window.__partials = 0;
new MutationObserver((ms) => ms.forEach((m) => m.addedNodes.forEach((n) => {
  if (n.dataset?.testid === "caller-partial") window.__partials++;
}))).observe(document.getElementById("timeline"), { childList: true });
"""
CHIP = "[data-testid=caller-final] [data-testid=utterance-emotion]"
CATEGORIES = ("neutral", "happy", "angry", "sad", "fearful", "surprised")
ANGRY = (
    "This is ridiculous! I have been waiting for three weeks and nobody helps me. I am furious!",
    "I am so angry. This is the worst service I have ever had. Nobody answers my emails and I want my money back now!",
    "This is absolutely unacceptable. I am sick of waiting, I am furious, and I want to speak to someone right now!",
)


def angry_speech() -> list[np.ndarray]:
    """An angry caller's words, spoken by the bundled Piper voice at 16 kHz (no emotional speech ships)."""
    tts = PiperTTS(*manifest.piper_joe(), select_device("cpu"))
    return [resample(tts.synthesize(text), tts.sample_rate, 16000) for text in ANGRY]


def live_item(call_id: str, inner: str = "") -> str:
    return f"[data-testid=live-call][data-call-id='{call_id}'] {inner}".strip()


async def call_stats(page: Page, call_id: str) -> dict[str, Any]:
    return dict((await page.eval(STATS))["calls"].get(call_id) or {})


async def reply_text(caller: Caller, turn_id: int) -> str:
    """The whole text of the agent's reply ``turn_id``, once it is done."""
    for n in itertools.count(1):
        done = await caller.wait_for("agent.text.done", count=n, timeout=10)
        if done["turn_id"] == turn_id:
            return str(done["text"])
    raise AssertionError("unreachable")


async def talk(page: Page, caller: Caller, clip: Path) -> tuple[dict[str, Any], str]:
    """The new call is listed and selected; the caller says the clip. Returns (final, reply text)."""
    call_id = caller.log.session_id
    await page.wait_for(f"{STATS}.selected", lambda s: s == call_id, 10, "the new call to be selected")
    assert await page.eval(f"!!{q(live_item(call_id))}")
    await caller.say(load_pcm(clip, 16000))
    await caller.silence(1.0)
    final = await caller.wait_for("transcript.final", timeout=20)
    await caller.listen(1.5)
    metrics = await caller.wait_for("turn.metrics", timeout=10)  # the reply's (the greeting has none)
    return final, await reply_text(caller, metrics["turn_id"])


async def check_timeline(page: Page, caller: Caller, final: dict[str, Any], reply: str) -> None:
    """Partials (grey) became the final, the reply and any barge-in are shown, the clock ticks."""
    log, call_id = caller.log, caller.log.session_id
    shown = await page.wait_for(
        texts("[data-testid=caller-final] .text"), lambda t: final["text"] in t, 10, "the final transcript"
    )
    assert len(shown) == len(log.of("transcript.final"))
    assert await page.eval("window.__partials") == len(shown)  # one grey line per utterance, while it was spoken
    assert await page.eval("document.querySelectorAll('[data-testid=caller-partial]').length") == 0
    agent = await page.wait_for(texts("[data-testid=agent-text] .text"), lambda t: reply in t, 5, "the agent's reply")
    assert len(agent) >= 2  # the greeting too
    assert "voice-to-voice" in await page.eval(f"{q('[data-testid=agent-text]:last-child')}.textContent")
    assert await page.eval("document.querySelectorAll('[data-testid=interruption]').length") == len(log.of("agent.interrupted"))
    assert await page.eval(f"{q(live_item(call_id, '[data-testid=duration]'))}.textContent") != "0:00"
    counts = await call_stats(page, call_id)
    assert counts["finals"] == len(shown) and counts["events"] > len(shown), counts


async def check_reconnect(page: Page, final: dict[str, Any]) -> None:
    """A lost monitor connection comes back, and its snapshot restores the call on show."""
    selected = (await page.eval(STATS))["selected"]
    await page.eval("window.__sockets.at(-1).close()")
    await page.wait_for(STATS, lambda s: s["reconnects"] >= 1 and s["connected"], 10, "the reconnection")
    await page.wait_for(
        texts("[data-testid=caller-final] .text"), lambda t: final["text"] in t, 5, "the transcript after the snapshot"
    )
    assert (await page.eval(STATS))["selected"] == selected


async def check_alert(page: Page, caller: Caller) -> None:
    """A caller who gets angry raises a real emotion.alert: a prominent badge with kind and time,
    announced, kept until clicked."""
    call_id = caller.log.session_id
    speech = await asyncio.to_thread(angry_speech)
    for pcm in speech * 3:  # an alert needs ~4 s of sustained anger; on a busy machine it may take longer
        await caller.say(pcm)
        await caller.listen(1.5)
        if caller.log.of("emotion.alert"):
            break
    alert = await caller.wait_for("emotion.alert", timeout=20)
    badge = live_item(call_id, f"[data-testid=alert-badge][data-kind={alert['kind']}]")
    text = await page.wait_for(f"{q(badge)}?.textContent", bool, 5, "the alert badge")
    seconds = alert["t_ms"] // 1000
    assert alert["kind"].capitalize() in text and f"{seconds // 60}:{seconds % 60:02d}" in text, (text, alert)
    await page.wait_for(
        f"{q('[data-testid=alert-announcer]')}.textContent", lambda t: alert["kind"].capitalize() in t, 5, "the announcement"
    )
    assert (await call_stats(page, call_id))["alerts"] >= 1
    await asyncio.sleep(0.3)  # the plot's next frame
    await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
    await page.screenshot(ARTIFACTS / "supervisor.png")
    await page.eval(f"{q(badge)}.click()")
    await page.wait_for(f"!!{q(badge)}", lambda b: not b, 5, "the acknowledged badge to go")
    assert "acknowledged" in await page.eval(f"{q('[data-testid=detail-alerts]')}.textContent")


async def check_archive(page: Page, call_id: str, final: dict[str, Any]) -> None:
    """Ended: off the live list, on the recent list, and its stored timeline opens from there."""
    recent = f"[data-testid=recent-call][data-call-id='{call_id}'] button"
    await page.wait_for(f"!{q(live_item(call_id))} && !!{q(recent)}", bool, 10, "the call to move to the recent list")
    await page.eval(f"{q(recent)}.click()")
    await page.wait_for(f"{q('[data-testid=detail]')}.dataset.source", lambda s: s == "archive", 10, "the stored call")
    stored = await page.eval(texts("[data-testid=caller-final] .text"))
    assert final["text"] in stored, stored
    assert await page.eval(f"{texts('[data-testid=agent-text]')}.length") >= 2
    await page.wait_for(f"{STATS}.plotPoints", lambda n: n > 0, 5, "the stored emotion on the plot")


async def test_supervisor_follows_a_live_call(server: ServerProcess, tmp_path: Path) -> None:
    clip, _ = librivox_clips()[0]
    async with chromium(tmp_path, clip) as cdp:
        page = await open_tab(cdp, f"{server.url}/supervisor", "window.supervisorStats", init_script=SOCKET_SPY)
        await page.wait_for(f"{STATS}.connected", bool, 10, "the monitor connection")
        await page.eval(COUNT_PARTIALS)
        assert (await page.eval("fetch('/health').then(r => r.json())")).get("emotion") is True
        caller = Caller(f"{server.ws}/ws/call")
        call_id = (await caller.connect()).session_id
        try:
            final, reply = await talk(page, caller, clip)
            await check_timeline(page, caller, final, reply)
            # the server's own estimates (a snapshot carries no live chips: check before reconnecting)
            await page.wait_for(f"{STATS}.calls['{call_id}'].emotionPoints", lambda n: n > 0, 10, "emotion estimates")
            assert await page.wait_for(f"{q(CHIP)}?.dataset.emotion", bool, 10, "the utterance's emotion chip") in CATEGORIES
            await check_reconnect(page, final)
            await page.wait_for(f"{STATS}.plotPoints", lambda n: n > 0, 5, "points on the plot")
            assert await page.eval(f"{q(live_item(call_id, '[data-testid=top-emotion]'))}.dataset.emotion") in CATEGORIES
            await check_alert(page, caller)
        finally:
            await caller.close()
        await check_archive(page, call_id, final)
        assert not [line for line in page.log() if line.startswith("exception")], page.log()
