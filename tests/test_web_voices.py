"""The voice lab page in a real headless Chromium: record from a fake microphone, create a voice,
hear its preview, delete it. Uses the caller page test's Chromium and DevTools helpers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.caller import librivox_clips
from tests.conftest import ARTIFACTS, ServerProcess
from tests.test_web_client import CHROMIUM, chromium, fake_mic_wav, open_page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (Debian package 'chromium')")

STATS = "JSON.parse(JSON.stringify(window.parleyStats))"
LEAD_S = 1.0  # silence before the clip in the fake microphone


def q(testid: str) -> str:
    return f"document.querySelector('[data-testid={testid}]')"


async def test_voice_lab_records_creates_previews_and_deletes(server: ServerProcess, tmp_path: Path) -> None:
    clip, _ = librivox_clips()[0]  # 7 s of one reader
    wav = fake_mic_wav(tmp_path / "mic.wav", clip, LEAD_S)
    async with chromium(tmp_path, wav) as cdp:
        page = await open_page(cdp, f"{server.url}/voices.html")
        assert await page.eval(f"{q('create-button')}.disabled")
        await page.eval(f"{q('voice-name')}.value = 'Browser voice'; {q('voice-name')}.dispatchEvent(new Event('input'))")
        await page.eval(f"{q('record-button')}.click()", gesture=True)
        await page.wait_for(f"{STATS}.state", lambda s: s == "recording", 10, "the recording to start")
        # lead silence + the clip + a little of the tail
        await page.wait_for(f"{STATS}.recordedMs", lambda ms: ms > (LEAD_S + 7.6) * 1000, 20, "the clip to be recorded")
        await page.eval(f"{q('record-button')}.click()", gesture=True)
        stats = await page.wait_for(STATS, lambda s: s["state"] == "recorded", 10, "the recording to stop")
        assert stats["recordedBytes"] > 10_000 and "webm" in stats["recordingType"]
        assert stats["levelMax"] > 0.3  # the meter moved with the speech
        waveform_ink = await page.eval(
            f"(() => {{ const c = {q('waveform')}; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; })()"
        )
        assert waveform_ink > 500  # the waveform was drawn

        await page.eval(f"{q('create-button')}.click()", gesture=True)
        stats = await page.wait_for(STATS, lambda s: s["state"] in {"created", "failed"}, 120, "the voice to be created")
        assert stats["state"] == "created", (stats, page.log())
        assert await page.eval("document.querySelectorAll('[data-testid=check]').length") == len(stats["checks"]) >= 5
        assert stats["similarity"]["preview"] > stats["similarity"]["stock_preview"]
        await page.wait_for(f"{STATS}.voices", lambda ids: stats["created"] in ids, 10, "the new voice in the list")

        await page.eval(f"{q('preview')}.play()", gesture=True)
        await page.wait_for(f"{STATS}.previewPlayed", bool, 10, "the preview to play")
        await page.wait_for(f"{q('preview')}.currentTime", lambda t: t > 0.5, 10, "the preview to keep playing")
        await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
        await page.screenshot(ARTIFACTS / "web_voices.png")

        # delete it from the list
        voice_id = stats["created"]
        await page.eval("window.confirm = () => true")
        await page.eval(
            f"document.querySelector('[data-testid=voice-row][data-id=\"{voice_id}\"] [data-testid=delete]').click()",
            gesture=True,
        )
        await page.wait_for(f"{STATS}.voices", lambda ids: voice_id not in ids, 10, "the voice to leave the list")
        assert not [line for line in page.log() if line.startswith("exception")], page.log()
    async with httpx.AsyncClient(base_url=server.url) as client:
        gone: Any = await client.get(f"/api/voices/{voice_id}")
        assert gone.status_code == 404
