"""The storage module against a real SQLite file."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from storage import Store


async def test_calls_and_turns_round_trip(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'parley.db'}")
    try:
        await store.start_call("c1", transport="websocket", language="en", persona="default", meta={"k": "v"})
        await store.add_turn("c1", 1, "agent", "Hello there, how can I help?", heard="Hello there", interrupted=True)
        await store.add_turn("c1", 2, "caller", "where is my order", t_ms=1200, metrics={"voice_to_voice_ms": 512.0})
        call = await store.get_call("c1")
        assert call is not None and call["ended_at"] is None and call["meta"] == {"k": "v"}
        assert [(t["role"], t["heard"], t["interrupted"]) for t in call["turns"]] == [
            ("agent", "Hello there", True),
            ("caller", "where is my order", False),
        ]
        await store.add_emotions(
            "c1",
            [
                {"type": "emotion", "t_ms": 1000, "arousal": 0.2},
                {"type": "emotion.alert", "t_ms": 5000, "kind": "angry"},
                {"type": "emotion.utterance", "t_ms": 5200, "valence": -0.4},
            ],
        )
        call = await store.get_call("c1")
        assert call is not None
        assert [e["t_ms"] for e in call["emotions"]] == [1000]
        assert call["alerts"][0]["kind"] == "angry" and call["emotion_utterances"][0]["valence"] == -0.4
        await store.end_call("c1", "hangup")
        await store.end_call("c1", "later")  # the first end wins
        call = await store.get_call("c1")
        assert call is not None and call["end_reason"] == "hangup" and call["ended_at"]
        assert [c["id"] for c in await store.list_calls()] == ["c1"]
        assert await store.get_call("nope") is None
        assert await store.count_calls() == 1
    finally:
        await store.close()
    # data survives a restart
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'parley.db'}")
    try:
        call = await store.get_call("c1")
        assert call is not None and len(call["turns"]) == 2
    finally:
        await store.close()


async def test_orders_callbacks_tool_calls_and_slots(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        await store.start_call("c1", transport="websocket", language="en", persona="default", meta={})
        await store.start_call("c2", transport="twilio", language="en", persona="default", meta={})
        assert await store.count_orders() == 0 and await store.get_order("457892") is None
        orders = [{"order_number": "457892", "status": "processing", "items": ["headphones"], "eta": "2026-11-25"}]
        assert await store.upsert_orders(orders) == 1
        assert await store.upsert_orders([{**orders[0], "status": "shipped", "customer_name": "Alex", "phone": "5550123"}]) == 1
        assert await store.count_orders() == 1
        order = await store.get_order("457892")
        assert order is not None and order["updated_at"]
        assert {k: v for k, v in order.items() if k != "updated_at"} == {
            "order_number": "457892",
            "status": "shipped",
            "items": ["headphones"],
            "eta": "2026-11-25",
            "customer_name": "Alex",
            "phone": "5550123",
        }

        cb = await store.add_callback("c1", "5550123", "2026-11-23 15:00", "refund")
        assert isinstance(cb["id"], int) and cb["status"] == "scheduled" and cb["call_id"] == "c1" and cb["created_at"]
        outside = await store.add_callback(None, "5550199", "2026-11-24 morning", "")
        assert outside["id"] > cb["id"] and outside["call_id"] is None
        assert [c["id"] for c in await store.list_callbacks()] == [cb["id"], outside["id"]]
        assert await store.list_callbacks("c1") == [cb] and await store.list_callbacks("c2") == []

        # recorded out of order: get_call orders them by seq
        await store.add_tool_call("c1", 2, "end_call", {}, True, {"ending": True}, None, 0.1)
        await store.add_tool_call("c1", 1, "lookup_order", {"order_number": "1"}, False, {}, "lookup_order: boom", 12.5)
        await store.set_slots("c1", {"order_number": "457892"})
        await store.set_slots("c1", {"phone": "5550123"})  # replaces
        await store.set_slots("nope", {"a": "b"})  # unknown call: no-op

        call = await store.get_call("c1")
        assert call is not None and call["slots"] == {"phone": "5550123"}
        assert [(t["seq"], t["name"], t["ok"], t["error"]) for t in call["tool_calls"]] == [
            (1, "lookup_order", False, "lookup_order: boom"),
            (2, "end_call", True, None),
        ]
        assert call["tool_calls"][0]["arguments"] == {"order_number": "1"} and call["tool_calls"][0]["ms"] == 12.5
        assert call["tool_calls"][1]["result"] == {"ending": True}
        assert call["callbacks"] == [cb]
        other = await store.get_call("c2")
        assert other is not None and other["slots"] == {} and other["tool_calls"] == [] and other["callbacks"] == []
        assert {c["id"]: c["slots"] for c in await store.list_calls()} == {"c1": {"phone": "5550123"}, "c2": {}}
    finally:
        await store.close()


OLD_CALLS_SCHEMA = """
CREATE TABLE calls (
    id VARCHAR(40) NOT NULL PRIMARY KEY,
    started_at DATETIME NOT NULL,
    ended_at DATETIME,
    transport VARCHAR(20) NOT NULL,
    language VARCHAR(8) NOT NULL,
    persona VARCHAR(64) NOT NULL,
    end_reason VARCHAR(64),
    meta JSON NOT NULL
)
"""


async def test_open_adds_missing_columns_to_an_old_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(OLD_CALLS_SCHEMA)
        db.execute(
            "INSERT INTO calls VALUES ('old', '2026-01-01 10:00:00.000000', NULL, 'websocket', 'en', 'default', NULL, '{\"k\": 1}')"
        )
        db.commit()
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        call = await store.get_call("old")
        assert call is not None and call["meta"] == {"k": 1} and call["slots"] == {}
        assert call["tool_calls"] == [] and call["callbacks"] == []
        await store.set_slots("old", {"order_number": "457892"})
        await store.add_tool_call("old", 1, "lookup_order", {}, True, {"found": True}, None, 3.0)
        assert await store.upsert_orders([{"order_number": "1", "status": "shipped"}]) == 1
    finally:
        await store.close()
    store = await Store.open(f"sqlite+aiosqlite:///{path}")  # nothing left to migrate
    try:
        call = await store.get_call("old")
        assert call is not None and call["slots"] == {"order_number": "457892"} and len(call["tool_calls"]) == 1
        assert await store.count_orders() == 1
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(calls)")]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert columns[-1] == "slots" and columns.count("slots") == 1
    assert {"orders", "callbacks", "tool_calls", "turns", "emotions", "voices"} <= tables
