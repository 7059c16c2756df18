"""The caller page in a real headless Chromium with a fake microphone, driven over the DevTools Protocol.

Chromium plays a wav (silence, a LibriVox clip, silence) as its microphone; the page captures it
with its AudioWorklet, streams it to a real ``server.py``, and plays the agent's reply.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import websockets

from bench.caller import librivox_clips, load_pcm
from bench.metrics import wer
from tests.conftest import ARTIFACTS, ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
RATE = 16000
TAIL_SILENCE_S = 4.0
# test_call.py allows 0.30 for audio sent straight over the socket; the page adds the browser's
# capture path (Chromium resampling, its audio processing, the worklet's resampler).
MAX_WER = 0.35
CALL_TIMEOUT_S = 40.0

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (Debian package 'chromium')")


class DevTools:
    """A Chrome DevTools Protocol client over one browser websocket, with flat sessions."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                fut = self.pending.pop(msg.get("id", -1), None)
                if fut is None:
                    self.events.append(msg)
                elif not fut.done():
                    fut.set_result(msg)
        finally:
            for fut in self.pending.values():
                fut.cancel()

    async def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and return its result; raises on a protocol error."""
        msg_id = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = fut
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, 15)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.send("Browser.close")
        await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await self.reader


class Page:
    """One tab: evaluate JavaScript, wait for a condition, capture the screen."""

    def __init__(self, cdp: DevTools, session: str) -> None:
        self.cdp = cdp
        self.session = session

    async def eval(self, expression: str, gesture: bool = False) -> Any:
        result = await self.cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True, "userGesture": gesture},
            self.session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, done: Callable[[Any], bool], within_s: float, what: str) -> Any:
        """Poll ``expression`` until ``done(value)``; fails with the last value and the page's log."""
        deadline = time.monotonic() + within_s
        while True:
            value = await self.eval(expression)
            if done(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {value!r}; page log: {self.log()}")
            await asyncio.sleep(0.25)

    def log(self) -> list[str]:
        """Console messages and uncaught exceptions the page produced."""
        lines = []
        for e in self.cdp.events:
            if e.get("method") == "Runtime.consoleAPICalled":
                args = e["params"]["args"]
                lines.append(
                    f"console.{e['params']['type']}: " + " ".join(str(a.get("value", a.get("description"))) for a in args)
                )
            elif e.get("method") == "Runtime.exceptionThrown":
                lines.append(f"exception: {e['params']['exceptionDetails']}")
        return lines

    async def screenshot(self, path: Path) -> None:
        shot = await self.cdp.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, self.session)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


def fake_mic_wav(path: Path, clip: Path, lead_s: float) -> Path:
    """Silence, the clip, silence: 16 kHz mono PCM16, for --use-file-for-fake-audio-capture."""
    speech = load_pcm(clip, RATE)
    lead = np.zeros(int(lead_s * RATE), np.int16)
    tail = np.zeros(int(TAIL_SILENCE_S * RATE), np.int16)
    sf.write(str(path), np.concatenate([lead, speech, tail]), RATE, subtype="PCM_16")
    return path


@contextlib.asynccontextmanager
async def chromium(tmp: Path, wav: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with a fake microphone playing ``wav`` once; yields a DevTools client."""
    profile = tmp / "profile"
    flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
        "--autoplay-policy=no-user-gesture-required",
        "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
        "about:blank",
    ]
    log_path = tmp / "chromium.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(str(CHROMIUM), *flags, stdout=log, stderr=subprocess.STDOUT)
    cdp: DevTools | None = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(lines := port_file.read_text().splitlines()) >= 2):
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Chromium did not start: {log_path.read_text(errors='replace')[-2000:]}")
            await asyncio.sleep(0.1)
        port, path = lines[:2]
        ws = await websockets.connect(f"ws://127.0.0.1:{port}{path}", max_size=2**26)
        cdp = DevTools(ws)
        yield cdp
    finally:
        if cdp is not None:
            await cdp.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def open_page(cdp: DevTools, url: str) -> Page:
    target = await cdp.send("Target.createTarget", {"url": "about:blank"})
    attached = await cdp.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
    page = Page(cdp, attached["sessionId"])
    for domain in ("Page.enable", "Runtime.enable"):
        await cdp.send(domain, session=page.session)
    await cdp.send(
        "Emulation.setDeviceMetricsOverride", {"width": 900, "height": 900, "deviceScaleFactor": 1, "mobile": False}, page.session
    )
    await cdp.send("Page.navigate", {"url": url}, page.session)
    await page.wait_for("document.readyState === 'complete' && !!window.parleyStats", bool, 15, "the page to load")
    return page


STATS = "JSON.parse(JSON.stringify(window.parleyStats))"
CALL_BUTTON = "document.querySelector('[data-testid=call-button]')"


@dataclass(frozen=True)
class Way:
    """What differs between the page's transports in these tests."""

    transport: str  # the value of the page's transport picker
    lead_s: float  # silence on the microphone before the clip
    agent_audio: Callable[[dict[str, Any]], bool]  # the page's stats show agent audio playing
    screenshot: str


# 2.5 s: the clip starts over the greeting, so the test sees barge-in drop queued audio.
WEBSOCKET = Way("websocket", 2.5, lambda s: s["playedChunks"] > 0, "web_caller.png")
# Over WebRTC Chromium's echo canceller takes the agent's voice as its far end, and while it plays
# (with no real echo path on a fake microphone) it suppresses the caller, cutting the clip into
# fragments: the clip waits for the greeting (~1 s to connect + ~4.5 s) to end.
WEBRTC = Way("webrtc", 7.0, lambda s: s["rtcAudioEnergy"] > 0, "web_caller_webrtc.png")


def count(selector: str) -> str:
    return f"document.querySelectorAll({selector!r}).length"


@contextlib.asynccontextmanager
async def answered_call(server: ServerProcess, tmp_path: Path, way: Way) -> AsyncIterator[tuple[Page, dict[str, Any]]]:
    """Call over ``way.transport`` with a LibriVox clip as the microphone; yields once the agent answers.

    Checks what both transports must show (the transcript, the reply text, the latency rows); the
    test checks the transport's own audio counters. Afterwards: a screenshot, the hang-up.
    """
    clip, reference = librivox_clips()[0]
    wav = fake_mic_wav(tmp_path / "mic.wav", clip, way.lead_s)
    # all of the clip and a second of silence after it have reached the server
    spoken_s = way.lead_s + sf.info(str(clip)).duration + 1.0
    async with chromium(tmp_path, wav) as cdp:
        page = await open_page(cdp, f"{server.url}/")
        assert await page.eval(f"{CALL_BUTTON}.textContent") == "Call"
        await page.eval(f"document.querySelector('[data-testid=transport-{way.transport}]').click()")
        await page.eval(f"{CALL_BUTTON}.click()", gesture=True)
        await page.wait_for(f"{STATS}.state", lambda s: s == "in call", 10, "session.created")
        assert await page.eval("document.querySelector('[data-testid=options]').disabled")  # no changes mid-call

        def answered(s: dict[str, Any]) -> bool:
            # the whole clip is recognised, and the agent's reply to it has started playing
            heard_all = s["framesSent"] * 0.02 >= spoken_s and bool(s["finals"])
            return (heard_all and len(s["metrics"]) >= len(s["finals"]) and way.agent_audio(s)) or bool(s["errors"])

        stats = await page.wait_for(STATS, answered, CALL_TIMEOUT_S, "a final transcript and a reply")
        assert not stats["errors"], stats["errors"]
        assert stats["transport"] == way.transport
        assert stats["partials"] > 0  # shown live while the clip was spoken
        shown = await page.eval("[...document.querySelectorAll('[data-testid=caller-final] .text')].map(e => e.textContent)")
        assert shown == stats["finals"]
        heard = " ".join(stats["finals"])
        assert wer(reference, heard) <= MAX_WER, (reference, heard)
        assert await page.eval(count("[data-testid=agent-text]")) >= 2  # greeting + reply
        assert await page.eval(count("[data-testid=turn-metrics]")) == len(stats["metrics"])
        # a barge-in shows on the line it cut
        assert await page.eval(count("[data-testid=agent-text].interrupted")) == len(stats["interruptions"])

        yield page, stats

        await asyncio.sleep(0.5)  # let a little more of the reply play before the picture
        await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
        await page.screenshot(ARTIFACTS / way.screenshot)
        await page.eval(f"{CALL_BUTTON}.click()", gesture=True)
        await page.wait_for(f"{STATS}.state", lambda s: s == "ended", 10, "the hang-up")
        assert not [line for line in page.log() if line.startswith("exception")], page.log()


async def test_caller_page_talks_to_the_agent(server: ServerProcess, tmp_path: Path) -> None:
    async with answered_call(server, tmp_path, WEBSOCKET) as (_, stats):
        assert stats["outputRate"] == RATE
        assert stats["audioBytesReceived"] > RATE  # more than half a second of agent speech
        assert stats["playedChunks"] > 0
        if stats["interruptions"]:
            # the queued greeting audio must be dropped at once (the server sends ~200 ms ahead,
            # so some is always queued mid-sentence)
            assert stats["droppedChunks"] > 0, stats


async def test_caller_page_over_webrtc(server: ServerProcess, tmp_path: Path) -> None:
    async with answered_call(server, tmp_path, WEBRTC) as (page, stats):
        assert stats["outputRate"] == 48000  # Opus
        assert stats["audioBytesReceived"] == 0  # no PCM over a WebSocket: the agent's voice came over RTP
        assert stats["rtcInboundBytes"] > 0 and stats["rtcSamplesReceived"] > 0
        # the reply (not only the greeting) is audible: its energy arrives after its text
        energy = stats["rtcAudioEnergy"]
        await page.wait_for(f"{STATS}.rtcAudioEnergy", lambda e: e > energy, 5, "the reply's audio over RTP")
        assert "WebRTC" in await page.eval("document.querySelector('[data-testid=session]').textContent")
        # the pickers: personas from the server, English and Mandarin, the default voice
        personas = await page.eval("fetch('/api/personas').then(r => r.json()).then(ps => ps.map(p => p.name))")
        assert await page.eval("[...document.querySelector('#persona').options].map(o => o.value)") == personas
        assert {"en", "zh"} <= set(await page.eval("[...document.querySelector('#language').options].map(o => o.value)"))
        assert await page.eval("document.querySelector('#voice').options.length") >= 1
