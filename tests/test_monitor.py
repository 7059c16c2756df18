"""Monitor fan-out: late joiners get a snapshot, slow subscribers lose old messages, never block."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from bench.caller import Caller, librivox_clips, load_pcm
from pipelines.monitor import Monitor
from tests.conftest import ServerProcess


async def test_snapshot_then_live_events_tagged_with_call_id() -> None:
    mon = Monitor()
    mon.call_started("a", transport="websocket", language="en", persona="default")
    mon.publish("a", {"type": "transcript.final", "text": "hello"})
    sub = mon.subscribe()
    snap = await sub.get()
    assert snap["type"] == "snapshot" and snap["calls"][0]["call_id"] == "a"
    assert snap["calls"][0]["transcript"][0]["text"] == "hello"
    mon.call_started("b", transport="webrtc", language="zh", persona="default")
    mon.publish("b", {"type": "emotion", "arousal": 0.5})
    mon.call_ended("a", "hangup")
    got = [await sub.get() for _ in range(3)]
    assert [(m["type"], m["call_id"]) for m in got] == [("call.started", "b"), ("emotion", "b"), ("call.ended", "a")]
    assert list(mon.live) == ["b"]
    mon.unsubscribe(sub)
    assert mon.subscribers == 0


async def test_slow_subscriber_drops_oldest_and_publish_never_waits() -> None:
    mon = Monitor(max_queue=10)
    sub = mon.subscribe()
    for i in range(100):
        mon.publish("c", {"type": "emotion", "i": i})
    assert sub.dropped == 91  # snapshot + 100 messages, 10 kept
    msgs = [await asyncio.wait_for(sub.get(), 1) for _ in range(10)]
    assert msgs[-1]["i"] == 99


async def test_ws_monitor_sees_two_calls_tagged_and_a_stalled_monitor_changes_nothing(server: ServerProcess) -> None:
    clips = librivox_clips()
    fast = await websockets.connect(f"{server.ws}/ws/monitor")
    stalled = await websockets.connect(f"{server.ws}/ws/monitor", max_queue=1)  # never read below
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        async for raw in fast:
            seen.append(json.loads(raw))

    reader = asyncio.create_task(read())
    try:
        callers = [Caller(f"{server.ws}/ws/call", realtime=2.0), Caller(f"{server.ws}/ws/call", realtime=2.0)]
        logs = [await c.connect() for c in callers]
        await asyncio.gather(*(c.say(load_pcm(clips[i + 1][0], 16000)) for i, c in enumerate(callers)))
        finals = await asyncio.gather(*(c.wait_for("transcript.final", timeout=30) for c in callers))
        await asyncio.gather(*(c.close() for c in callers))
        await asyncio.sleep(0.5)
    finally:
        await fast.close()
        await stalled.close()
        await asyncio.wait_for(reader, 5)
    assert seen[0]["type"] == "snapshot"
    for log, final in zip(logs, finals, strict=True):
        mine = [m for m in seen if m.get("call_id") == log.session_id]
        kinds = [m["type"] for m in mine]
        assert kinds[0] == "call.started" and kinds[-1] == "call.ended", kinds
        assert final["text"] in [m.get("text") for m in mine if m["type"] == "transcript.final"]
        assert "agent.text" in kinds and "speech.started" in kinds
    # the two calls never see each other's words
    a, b = (log.session_id for log in logs)
    texts_a = {m["text"] for m in seen if m.get("call_id") == a and m["type"] == "transcript.final"}
    texts_b = {m["text"] for m in seen if m.get("call_id") == b and m["type"] == "transcript.final"}
    assert texts_a and texts_b and not texts_a & texts_b
