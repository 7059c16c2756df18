"""Voice-to-voice per transport: ``python -m bench.transports``.

One server; the same LibriVox clips spoken at real-time pace over each transport in turn.
*server* v2v is the server's own measure (last voiced frame -> first agent audio frame sent);
*caller* v2v is measured by the caller (last loud frame sent -> first agent audio received).
Their difference is what the transport adds (codec, jitter buffer, resampling, packetisation)
on top of the definitional gap also present on the raw WebSocket path.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np

from bench.caller import Caller, librivox_clips, load_pcm, speech_bounds
from bench.metrics import percentile
from bench.rtc_caller import RATE as RTC_RATE
from bench.rtc_caller import RTCCaller
from bench.server_proc import ServerProcess
from bench.twilio_caller import TwilioCaller
from pipelines.codecs.twilio import ulaw_decode

Result = tuple[list[float], list[float]]  # (server v2v, caller v2v)
Clips = list[tuple[Path, str]]


async def over_websocket(srv: ServerProcess, clips: Clips) -> Result:
    caller = Caller(f"{srv.ws}/ws/call")
    log = await caller.connect()
    await caller.wait_for("agent.audio.done", timeout=30)
    await caller.listen(0.5)
    client: list[float] = []
    for n, (wav, _) in enumerate(clips, start=1):
        await caller.say(load_pcm(wav, 16000))
        await caller.wait_for("agent.audio.done", n + 1, timeout=30)
        first = log.first_audio_after(log.speech_end_sent[-1])
        if first is not None:
            client.append((first - log.speech_end_sent[-1]) * 1000)
        await caller.listen(1.0)
    await caller.close()
    return [float(e["voice_to_voice_ms"]) for e in log.of("turn.metrics")], client


async def over_webrtc(srv: ServerProcess, clips: Clips) -> Result:
    caller = RTCCaller(srv.url)
    client: list[float] = []
    async with httpx.AsyncClient(timeout=20) as http:
        try:
            await caller.connect(http)
            await caller.wait_for("agent.audio.done", timeout=30)
            await asyncio.sleep(0.5)
            for n, (wav, _) in enumerate(clips, start=1):
                caller.mic.say(load_pcm(wav, RTC_RATE))
                await caller.mic.idle.wait()
                await caller.wait_for("agent.audio.done", n + 1, timeout=30)
                await asyncio.sleep(1.0)
                first = caller.first_loud_audio_after(caller.mic.speech_end_sent[-1])
                if first is not None:
                    client.append((first - caller.mic.speech_end_sent[-1]) * 1000)
        finally:
            await caller.close()
    return [float(e["voice_to_voice_ms"]) for e in caller.of("turn.metrics")], client


async def over_twilio(srv: ServerProcess, clips: Clips) -> Result:
    phone = TwilioCaller(f"{srv.ws}/ws/twilio")
    log = await phone.connect()
    await phone.silence(6.0)  # the greeting plays out
    client: list[float] = []
    for wav, _ in clips:
        pcm = load_pcm(wav, 8000)
        _, last = speech_bounds(pcm, 8000)
        await phone.say(pcm[:last])
        spoke_until = time.perf_counter()
        await phone.say(pcm[last:])
        await phone.silence(4.0)
        first = next((t for t, payload in log.media if t >= spoke_until and _loud(payload)), None)
        if first is not None:
            client.append((first - spoke_until) * 1000)
    await phone.stop()
    async with httpx.AsyncClient(timeout=10) as http:
        call = (await http.get(f"{srv.url}/api/calls/{log.session_id}")).json()
    server = [float(t["metrics"]["voice_to_voice_ms"]) for t in call["turns"] if t["metrics"].get("voice_to_voice_ms")]
    return server, client


def _loud(payload: bytes, threshold: int = 500) -> bool:
    return bool(np.abs(ulaw_decode(payload).astype(np.int32)).max() > threshold)


TRANSPORTS: dict[str, Callable[[ServerProcess, Clips], Awaitable[Result]]] = {
    "WebSocket (PCM16 16 kHz)": over_websocket,
    "WebRTC (Opus 48 kHz)": over_webrtc,
    "Twilio Media Streams (mu-law 8 kHz)": over_twilio,
}


async def bench(args: argparse.Namespace) -> None:
    clips = librivox_clips() * args.repeat
    srv = ServerProcess(Path(tempfile.mkdtemp(prefix="parley-transports-")), PARLEY_POLICY="intent")
    rows = []
    try:
        srv.wait_ready()
        for name, run in TRANSPORTS.items():
            server, client = await run(srv, clips)
            rows.append((name, server, client))
    finally:
        srv.stop()
    print("| transport | turns | server v2v p50 | p95 | caller v2v p50 | p95 | added by the path (caller - server, median) |")
    print("|---|---|---|---|---|---|---|")
    for name, server, client in rows:
        gaps = [c - s for s, c in zip(server, client, strict=False)]
        added = statistics.median(gaps) if gaps else float("nan")
        print(
            f"| {name} | {len(client)} | {percentile(server, 50):.0f} | {percentile(server, 95):.0f} | "
            f"{percentile(client, 50):.0f} | {percentile(client, 95):.0f} | {added:+.0f} ms |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=1)
    asyncio.run(bench(p.parse_args()))


if __name__ == "__main__":
    main()
