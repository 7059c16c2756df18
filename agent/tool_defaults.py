"""The default customer-service tools: order lookup, callback booking, transfer, hang-up.

Orders come from :class:`storage.Store` (seeded by :func:`seed_orders`), or, with no store or
no such order, from ``<data_dir>/orders.json``: a JSON list of order objects the deployment provides.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from agent.tools import Tool, ToolContext, ToolError
from storage import Store

ORDERS_FILE = "orders.json"

DEMO_ORDERS: tuple[dict[str, Any], ...] = (
    {
        "order_number": "457892",
        "status": "shipped",
        "items": ["wireless headphones"],
        "eta": "2026-11-25",
        "customer_name": "Alex Morgan",
        "phone": "+14155550123",
    },
    {
        "order_number": "123456",
        "status": "processing",
        "items": ["coffee grinder", "paper filters"],
        "eta": "2026-11-28",
        "customer_name": "Sam Lee",
        "phone": "+14155550188",
    },
    {
        "order_number": "240501",
        "status": "delivered",
        "items": ["running shoes"],
        "eta": "2026-11-18",
        "customer_name": "Priya Shah",
        "phone": "+442071838750",
    },
    {
        "order_number": "318240",
        "status": "cancelled",
        "items": ["desk lamp"],
        "eta": "",
        "customer_name": "Jordan Kim",
        "phone": "+14155550142",
    },
    {
        "order_number": "775310",
        "status": "delayed",
        "items": ["office chair", "seat cushion"],
        "eta": "2026-12-03",
        "customer_name": "Maria Rossi",
        "phone": "+390612345678",
    },
)

_DIGIT_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}
_DIGIT_WORDS |= {"six": "6", "seven": "7", "eight": "8", "nine": "9"}
_WHEN = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{1,2}:\d{2}|morning|afternoon|evening))?", re.IGNORECASE)


def normalise_digits(raw: str) -> str:
    """Keep the digits of ``raw``, spoken digit words included ("four five 7" -> "457")."""
    out: list[str] = []
    for token in re.findall(r"[a-z]+|\d+", raw.lower()):
        out.append(token if token.isdigit() else _DIGIT_WORDS.get(token, ""))
    return "".join(out)


async def load_orders_file(path: Path) -> list[dict[str, Any]]:
    """The orders in ``path`` (a JSON list of objects with ``order_number``); [] when it does not exist."""
    return await asyncio.to_thread(_read_orders, path)


def _read_orders(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(o, dict) and "order_number" in o for o in data):
        raise ValueError(f"{path}: expected a JSON list of objects with an order_number")
    return data


async def seed_orders(store: Store, path: Path | None) -> int:
    """Fill an empty orders table from ``path`` or :data:`DEMO_ORDERS`; returns how many were written (0 if not empty)."""
    if await store.count_orders() > 0:
        return 0
    orders = await load_orders_file(path) if path is not None else []
    if not orders:
        orders = [dict(o) for o in DEMO_ORDERS]
    return await store.upsert_orders([{**o, "order_number": normalise_digits(str(o["order_number"]))} for o in orders])


async def lookup_order(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    number = normalise_digits(args["order_number"])
    if not number:
        raise ToolError("lookup_order: the order number needs digits")
    order = await ctx.store.get_order(number) if ctx.store is not None else None
    if order is None:
        for o in await load_orders_file(ctx.data_dir / ORDERS_FILE):
            if normalise_digits(str(o["order_number"])) == number:
                order = o
                break
    if order is None:
        return {"found": False, "order_number": number, "status": "", "items": [], "eta": ""}
    items = [str(i) for i in order.get("items", [])]
    return {
        "found": True,
        "order_number": number,
        "status": str(order.get("status", "unknown")),
        "items": items,
        "eta": str(order.get("eta") or ""),
    }


def _check_when(raw: str) -> str:
    if raw.strip().lower() in ("asap", "as soon as possible"):
        return "asap"
    m = _WHEN.fullmatch(raw.strip())
    if m is None:
        raise ToolError(
            "schedule_callback: when must be asap or a date YYYY-MM-DD, optionally followed by HH:MM, morning, afternoon or evening"
        )
    date, part = m.group(1), (m.group(2) or "").lower()
    if ":" in part:
        part = part.zfill(5)
    try:
        dt.date.fromisoformat(date)
        if ":" in part:
            dt.time.fromisoformat(part)
    except ValueError:
        raise ToolError(f"schedule_callback: {raw!r} is not a real date and time") from None
    return f"{date} {part}" if part else date


async def schedule_callback(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    phone = re.sub(r"\D", "", args["phone"])
    if not 7 <= len(phone) <= 15:
        raise ToolError("schedule_callback: phone number needs 7 to 15 digits")
    when = _check_when(args["when"])
    if ctx.store is None:
        raise ToolError("schedule_callback: callbacks cannot be booked right now")
    row = await ctx.store.add_callback(ctx.call_id or None, phone, when, args.get("reason", ""))
    return {"scheduled": True, "callback_id": row["id"], "phone": phone, "when": when}


async def transfer_to_human(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    return {"transferred": True, "queue": "support"}


async def end_call(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    return {"ending": True}


def _params(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


def default_tools() -> list[Tool]:
    """Fresh :class:`Tool` definitions for the default registry."""
    text = "string"
    return [
        Tool(
            "lookup_order",
            "Look up an order by its order number. Returns its status, items and delivery date.",
            _params(["order_number"], order_number={"type": text, "description": "The order number, digits only, e.g. 457892."}),
            lookup_order,
        ),
        Tool(
            "schedule_callback",
            "Book a phone call back to the caller at a date and time they chose.",
            _params(
                ["phone", "when"],
                phone={"type": text, "description": "Phone number to call, with country code if given."},
                when={
                    "type": text,
                    "description": "asap, or a date YYYY-MM-DD optionally followed by HH:MM or morning/afternoon/evening.",
                },
                reason={"type": text, "description": "Short reason for the callback."},
            ),
            schedule_callback,
        ),
        Tool(
            "transfer_to_human",
            "Transfer the caller to a human agent. Use when they ask for a person or you cannot help.",
            _params(["reason"], reason={"type": text, "description": "Why the caller needs a human."}),
            transfer_to_human,
            effect="transfer",
        ),
        Tool(
            "end_call",
            "Hang up after saying goodbye, when the caller has nothing more to ask.",
            _params([], reason={"type": text, "description": "Why the call ends."}),
            end_call,
            effect="end_call",
        ),
    ]
