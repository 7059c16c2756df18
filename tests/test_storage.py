"""The storage module against a real SQLite file."""

from __future__ import annotations

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
