"""The tool registry and the default tools, against a real SQLite store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.tool_defaults import DEMO_ORDERS, normalise_digits
from agent.tools import Tool, ToolContext, ToolError, ToolRegistry, ToolResult, default_registry, seed_orders
from pipelines.errors import ParleyError
from storage import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        await s.start_call("c1", transport="websocket", language="en", persona="default", meta={})
        yield s
    finally:
        await s.close()


def _ctx(store: Store | None, data_dir: Path, slots: dict[str, str] | None = None) -> ToolContext:
    return ToolContext("c1", store, slots or {}, data_dir)


async def _echo(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    return {"args": args, "call_id": ctx.call_id}


def _typed_registry() -> ToolRegistry:
    params = {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "color": {"type": "string", "enum": ["red", "green"]},
        },
        "required": ["s"],
    }
    return ToolRegistry([Tool("echo", "Echo the arguments.", params, _echo)])


# ---- registry -------------------------------------------------------------------------------


def test_schemas_are_openai_tools() -> None:
    reg = default_registry()
    assert reg.names() == ["lookup_order", "schedule_callback", "transfer_to_human", "end_call"]
    schemas = reg.schemas()
    assert [s["type"] for s in schemas] == ["function"] * 4
    fn = schemas[0]["function"]
    assert set(fn) == {"name", "description", "parameters"}
    assert fn["name"] == "lookup_order" and fn["parameters"]["required"] == ["order_number"]
    assert fn["parameters"]["properties"]["order_number"]["type"] == "string"
    assert [s["function"]["name"] for s in reg.schemas(["end_call", "lookup_order", "nope"])] == ["lookup_order", "end_call"]
    assert reg.schemas([]) == []
    json.dumps(schemas)  # serialisable as-is
    for s in schemas:
        assert len(s["function"]["description"]) < 120
    tool = reg.get("transfer_to_human")
    assert tool is not None and tool.effect == "transfer" and reg.get("nope") is None


def test_register_rejects_duplicates_and_bad_schemas() -> None:
    reg = _typed_registry()
    with pytest.raises(ValueError, match="already registered"):
        reg.register(Tool("echo", "again", {"type": "object", "properties": {}}, _echo))
    with pytest.raises(ValueError, match="object"):
        reg.register(Tool("bad", "x", {"type": "string"}, _echo))
    with pytest.raises(ValueError, match="unknown properties"):
        reg.register(Tool("bad", "x", {"type": "object", "properties": {}, "required": ["a"]}, _echo))


def test_parse_arguments_coerces_and_strips() -> None:
    reg = _typed_registry()
    got = reg.parse_arguments("echo", '{"s": 457892, "i": "42", "n": "2.5", "b": "true", "color": "red", "extra": 1}')
    assert got == {"s": "457892", "i": 42, "n": 2.5, "b": True, "color": "red"}
    assert reg.parse_arguments("echo", {"s": " hi ", "i": 3.0, "n": 7, "b": False, "color": None}) == {
        "s": "hi",
        "i": 3,
        "n": 7,
        "b": False,
    }
    assert reg.parse_arguments("echo", {"s": "x", "i": "-5"}) == {"s": "x", "i": -5}
    assert default_registry().parse_arguments("end_call", "") == {}
    assert default_registry().parse_arguments("end_call", None) == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("{}", "missing required argument 's'"),
        ('{"s": "  "}', "missing required argument 's'"),
        ('{"s": null}', "missing required argument 's'"),
        ('{"s": ["a"]}', "'s' must be a string"),
        ('{"s": "x", "i": "4.5"}', "'i' must be a integer"),
        ('{"s": "x", "i": true}', "'i' must be a integer"),
        ('{"s": "x", "n": "lots"}', "'n' must be a number"),
        ('{"s": "x", "n": "nan"}', "'n' must be a number"),
        ('{"s": "x", "b": "maybe"}', "'b' must be a boolean"),
        ('{"s": "x", "color": "blue"}', "must be one of red, green"),
    ],
)
def test_parse_arguments_errors(raw: str, message: str) -> None:
    with pytest.raises(ToolError, match=message) as info:
        _typed_registry().parse_arguments("echo", raw)
    assert isinstance(info.value, ParleyError) and info.value.code == "tool_error"


def test_unknown_tool_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="unknown tool 'refund'; available: lookup_order"):
        default_registry().parse_arguments("refund", "{}")


async def test_call_reports_failures_without_raising(tmp_path: Path) -> None:
    async def slow(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(5)
        return {}

    async def broken(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("boom")

    async def inner_timeout(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        raise TimeoutError("upstream")

    async def not_a_dict(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        return [1]  # type: ignore[return-value]

    empty = {"type": "object", "properties": {}}
    reg = _typed_registry()
    reg.register(Tool("slow", "Slow.", empty, slow, effect="end_call", timeout_s=0.05))
    reg.register(Tool("broken", "Broken.", empty, broken))
    reg.register(Tool("inner", "Inner timeout.", empty, inner_timeout))
    reg.register(Tool("listy", "Returns a list.", empty, not_a_dict))
    ctx = _ctx(None, tmp_path)

    ok = await reg.call("echo", '{"s": "hi"}', ctx)
    assert ok.ok and ok.result == {"args": {"s": "hi"}, "call_id": "c1"} and ok.error is None and ok.ms >= 0
    timed = await reg.call("slow", "{}", ctx)
    assert not timed.ok and timed.error == "slow: timed out after 0.05 s" and timed.effect == "none"
    assert 40 <= timed.ms < 2000
    results = [await reg.call(n, "{}", ctx) for n in ("broken", "inner", "listy", "nope")]
    assert [r.ok for r in results] == [False] * 4
    assert results[0].error == "broken: KeyError: 'boom'"
    assert results[1].error == "inner: TimeoutError: upstream"
    assert results[2].error == "listy: returned list, not an object"
    assert results[3].error is not None and results[3].error.startswith("unknown tool 'nope'")
    bad = await reg.call("echo", "{oops", ctx)
    assert not bad.ok and bad.name == "echo" and "not valid JSON" in (bad.error or "")
    assert bad.to_json() == {
        "name": "echo",
        "ok": False,
        "result": {},
        "error": bad.error,
        "ms": round(bad.ms, 2),
        "effect": "none",
    }


async def test_call_propagates_cancellation(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def wait(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(5)
        return {}

    reg = ToolRegistry([Tool("wait", "Wait.", {"type": "object", "properties": {}}, wait)])
    task = asyncio.create_task(reg.call("wait", "{}", _ctx(None, tmp_path)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_context_slots_are_a_read_only_view(tmp_path: Path) -> None:
    slots = {"order_number": "457892"}
    ctx = _ctx(None, tmp_path, slots)
    slots["phone"] = "5550123"
    assert dict(ctx.slots) == {"order_number": "457892", "phone": "5550123"}
    with pytest.raises(TypeError):
        ctx.slots["x"] = "y"  # type: ignore[index]


# ---- default tools ----------------------------------------------------------------------------


def test_normalise_digits() -> None:
    assert normalise_digits("#457-892") == "457892"
    assert normalise_digits("four five seven 8 nine two") == "457892"
    assert normalise_digits("order number") == ""


async def test_seed_orders_is_idempotent(store: Store, tmp_path: Path) -> None:
    assert await seed_orders(store, None) == len(DEMO_ORDERS)
    assert await seed_orders(store, None) == 0
    assert await store.count_orders() == len(DEMO_ORDERS)
    order = await store.get_order("457892")
    assert (
        order is not None
        and order["status"] == "shipped"
        and order["eta"] == "2026-11-25"
        and order["items"] == ["wireless headphones"]
    )


async def test_seed_orders_from_file(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text(json.dumps([{"order_number": "99-1234", "status": "shipped", "items": ["kettle"], "eta": "2026-12-01"}]))
    assert await seed_orders(store, path) == 1
    assert await store.get_order("991234") is not None and await store.get_order("457892") is None
    assert await seed_orders(store, path) == 0
    # a path that does not exist falls back to the demo set
    s2 = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'y.db'}")
    try:
        assert await seed_orders(s2, tmp_path / "missing.json") == len(DEMO_ORDERS)
    finally:
        await s2.close()


async def test_lookup_order_from_store(store: Store, tmp_path: Path) -> None:
    await seed_orders(store, None)
    reg = default_registry()
    r = await reg.call("lookup_order", '{"order_number": "order 457 892"}', _ctx(store, tmp_path))
    assert r.ok and r.effect == "none"
    assert r.result == {
        "found": True,
        "order_number": "457892",
        "status": "shipped",
        "items": ["wireless headphones"],
        "eta": "2026-11-25",
    }
    r = await reg.call("lookup_order", {"order_number": 123456}, _ctx(store, tmp_path))
    assert r.ok and r.result["status"] == "processing"
    missing = await reg.call("lookup_order", {"order_number": "000001"}, _ctx(store, tmp_path))
    assert missing.ok and missing.result == {"found": False, "order_number": "000001", "status": "", "items": [], "eta": ""}
    bad = await reg.call("lookup_order", {"order_number": "abc"}, _ctx(store, tmp_path))
    assert not bad.ok and bad.error == "lookup_order: the order number needs digits"


async def test_lookup_order_falls_back_to_orders_json(tmp_path: Path) -> None:
    reg = default_registry()
    r = await reg.call("lookup_order", {"order_number": "555111"}, _ctx(None, tmp_path))
    assert r.ok and r.result["found"] is False  # no store, no file
    (tmp_path / "orders.json").write_text(
        json.dumps([{"order_number": "555-111", "status": "delayed", "items": ["sofa"], "eta": ""}])
    )
    r = await reg.call("lookup_order", {"order_number": "555111"}, _ctx(None, tmp_path))
    assert r.ok and r.result == {"found": True, "order_number": "555111", "status": "delayed", "items": ["sofa"], "eta": ""}
    (tmp_path / "orders.json").write_text('{"not": "a list"}')
    r = await reg.call("lookup_order", {"order_number": "555111"}, _ctx(None, tmp_path))
    assert not r.ok and "expected a JSON list" in (r.error or "")


async def test_lookup_order_store_miss_reads_file(store: Store, tmp_path: Path) -> None:
    await seed_orders(store, None)
    (tmp_path / "orders.json").write_text(json.dumps([{"order_number": "777000", "status": "shipped"}]))
    r = await default_registry().call("lookup_order", {"order_number": "777000"}, _ctx(store, tmp_path))
    assert r.ok and r.result["found"] and r.result["items"] == [] and r.result["eta"] == ""


async def test_schedule_callback_books_in_store(store: Store, tmp_path: Path) -> None:
    reg = default_registry()
    args = {"phone": "+1 (415) 555-0123", "when": "2026-11-23 3:00", "reason": "refund question"}
    r = await reg.call("schedule_callback", json.dumps(args), _ctx(store, tmp_path))
    assert r.ok, r.error
    assert r.result == {
        "scheduled": True,
        "callback_id": r.result["callback_id"],
        "phone": "14155550123",
        "when": "2026-11-23 03:00",
    }
    r2 = await reg.call("schedule_callback", {"phone": "5550123", "when": "2026-11-24 Morning"}, _ctx(store, tmp_path))
    assert r2.ok and r2.result["when"] == "2026-11-24 morning"
    r3 = await reg.call("schedule_callback", {"phone": "5550123", "when": "2026-11-25"}, ToolContext("", store, {}, tmp_path))
    assert r3.ok and r3.result["when"] == "2026-11-25"
    booked = await store.list_callbacks("c1")
    assert [(c["phone"], c["when"], c["reason"], c["status"]) for c in booked] == [
        ("14155550123", "2026-11-23 03:00", "refund question", "scheduled"),
        ("5550123", "2026-11-24 morning", "", "scheduled"),
    ]
    assert [c["call_id"] for c in await store.list_callbacks()] == ["c1", "c1", None]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"phone": "12345", "when": "2026-11-23"}, "phone number needs 7 to 15 digits"),
        ({"phone": "1234567890123456", "when": "2026-11-23"}, "phone number needs 7 to 15 digits"),
        ({"phone": "5550123", "when": "tomorrow"}, "when must be asap or a date YYYY-MM-DD"),
        ({"phone": "5550123", "when": "2026-02-30"}, "is not a real date and time"),
        ({"phone": "5550123", "when": "2026-11-23 25:00"}, "is not a real date and time"),
        ({"phone": "5550123"}, "missing required argument 'when'"),
    ],
)
async def test_schedule_callback_rejects_bad_arguments(store: Store, tmp_path: Path, args: dict[str, str], message: str) -> None:
    r = await default_registry().call("schedule_callback", args, _ctx(store, tmp_path))
    assert not r.ok and message in (r.error or "")
    assert await store.list_callbacks() == []


async def test_schedule_callback_without_store(tmp_path: Path) -> None:
    r = await default_registry().call("schedule_callback", {"phone": "5550123", "when": "2026-11-23"}, _ctx(None, tmp_path))
    assert not r.ok and "cannot be booked" in (r.error or "")


async def test_transfer_and_end_call_effects(tmp_path: Path) -> None:
    reg = default_registry()
    t = await reg.call("transfer_to_human", {"reason": "wants a person"}, _ctx(None, tmp_path))
    assert t == ToolResult("transfer_to_human", True, {"transferred": True, "queue": "support"}, None, t.ms, "transfer")
    assert not (await reg.call("transfer_to_human", "{}", _ctx(None, tmp_path))).ok  # reason is required
    e = await reg.call("end_call", "{}", _ctx(None, tmp_path))
    assert e.ok and e.result == {"ending": True} and e.effect == "end_call"
    assert e.to_json()["effect"] == "end_call"
