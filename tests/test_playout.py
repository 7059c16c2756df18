"""Outbox lanes, flushing on barge-in, pacing and what-was-heard accounting."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from pipelines import events as ev
from pipelines.playout import Outbox, Playout


async def test_control_jumps_the_data_lane_and_flush_drops_only_that_turn() -> None:
    box = Outbox()
    box.put_nowait(ev.AgentText("a", 1))
    box.put_nowait(ev.AgentAudio(b"\x00" * 10, 1))
    box.put_nowait(ev.AgentAudio(b"\x00" * 10, 2))
    box.put_nowait(ev.AgentAudioDone(1, 5))
    box.put_nowait(ev.AgentInterrupted(1, 5, ""))
    assert isinstance(await box.get(), ev.AgentInterrupted)
    assert box.flush_audio(1) == 10
    got = [await box.get(), await box.get()]
    assert isinstance(got[0], ev.AgentText) and isinstance(got[1], ev.AgentAudio) and got[1].turn_id == 2
    box.close()
    try:
        await box.get()
    except EOFError:
        pass
    else:
        raise AssertionError("closed outbox must raise EOFError")


async def test_producer_waits_when_client_is_not_reading() -> None:
    box = Outbox(max_items=2)
    await box.put(ev.AgentAudio(b"1", 1))
    await box.put(ev.AgentAudio(b"2", 1))
    blocked = asyncio.create_task(box.put(ev.AgentAudio(b"3", 1)))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    await box.get()
    await asyncio.wait_for(blocked, 1)
    assert len(box) == 2


async def test_playout_paces_to_real_time_plus_lead() -> None:
    box = Outbox(max_items=10_000)
    play = Playout(box, 1, 16000, frame_ms=20, lead_ms=100)
    t0 = time.perf_counter()
    await play.play("one two three four", np.zeros(16000 // 2, dtype=np.int16))  # 500 ms
    elapsed = time.perf_counter() - t0
    assert 0.35 <= elapsed <= 0.9  # ~400 ms: the last 100 ms may be sent ahead
    assert play.sent_ms == 500
    assert len(box) == 25


async def test_heard_text_follows_played_time() -> None:
    play = Playout(Outbox(max_items=10_000), 1, 16000, frame_ms=20, lead_ms=10_000)
    await play.play("Hello there.", np.zeros(16000, dtype=np.int16))  # 0-1000 ms
    await play.play("Your order ships today.", np.zeros(16000, dtype=np.int16))  # 1000-2000 ms
    assert play.heard_text(0) == ""
    assert play.heard_text(1000) == "Hello there."
    assert play.heard_text(1500) == "Hello there. Your order"
    assert play.heard_text(5000) == "Hello there. Your order ships today."
