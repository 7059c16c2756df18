"""Tools the agent's LLM may call (OpenAI function calling): typed definitions and one registry.

A :class:`Tool` is a JSON-Schema description plus an async function. The :class:`ToolRegistry`
renders the schemas for the chat ``tools`` parameter, validates the arguments the model sends,
and runs the tool under its timeout. Tool failures never raise out of :meth:`ToolRegistry.call`:
they come back as ``ToolResult(ok=False, error=...)`` so the model can read the error and recover.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pipelines.errors import ParleyError
from storage import Store

Effect = Literal["none", "transfer", "end_call"]
ToolFn = Callable[["ToolContext", dict[str, Any]], Awaitable[dict[str, Any]]]

_INT = re.compile(r"[+-]?[0-9]+")
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


class ToolError(ParleyError):
    """Raised when a tool call is malformed or the tool rejects its arguments."""

    code = "tool_error"


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may use: the call it serves, storage (None when disabled), the call's slots, the data dir.

    ``slots`` is a read-only view of the call's slots (a dict passed in is wrapped, not copied); a tool
    that learns something returns it in its result and the caller decides whether to store it.
    """

    call_id: str
    store: Store | None
    slots: Mapping[str, str]
    data_dir: Path

    def __post_init__(self) -> None:
        if not isinstance(self.slots, MappingProxyType):
            slots = self.slots if isinstance(self.slots, dict) else dict(self.slots)
            object.__setattr__(self, "slots", MappingProxyType(slots))


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one tool call. ``effect`` is what the session must do next (only set when ``ok``)."""

    name: str
    ok: bool
    result: dict[str, Any]
    error: str | None
    ms: float
    effect: Effect = "none"

    def to_json(self) -> dict[str, Any]:
        """The event payload (and the basis of the ``tool`` message sent back to the model)."""
        return {
            "name": self.name,
            "ok": self.ok,
            "result": self.result,
            "error": self.error,
            "ms": round(self.ms, 2),
            "effect": self.effect,
        }


@dataclass(frozen=True, slots=True)
class Tool:
    """One callable tool: ``parameters`` is a JSON Schema object (``type``, ``properties``, ``required``).

    ``fn`` receives the validated arguments (see :meth:`ToolRegistry.parse_arguments`) and returns
    a JSON-serialisable dict; it raises :class:`ToolError` to reject its arguments.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: ToolFn
    effect: Effect = "none"
    timeout_s: float = 5.0


class ToolRegistry:
    """The tools one agent may call, by name. Register at start-up; :meth:`call` is safe to use concurrently."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        """Add ``tool``; raises ValueError on a duplicate name or a schema that is not an object schema."""
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        params = tool.parameters
        if params.get("type") != "object" or not isinstance(params.get("properties", {}), dict):
            raise ValueError(f"tool {tool.name!r}: parameters must be a JSON Schema object with properties")
        missing = [k for k in params.get("required", []) if k not in params.get("properties", {})]
        if missing:
            raise ValueError(f"tool {tool.name!r}: required names unknown properties {missing}")
        self._tools[tool.name] = tool

    def names(self) -> list[str]:
        """Registered tool names, in registration order."""
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def schemas(self, allowed: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The OpenAI chat ``tools`` list: all tools, or those named in ``allowed`` (unknown names are ignored)."""
        keep = None if allowed is None else set(allowed)
        return [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in self._tools.values()
            if keep is None or t.name in keep
        ]

    def parse_arguments(self, name: str, raw: str | Mapping[str, Any] | None) -> dict[str, Any]:
        """Decode and validate the model's arguments for tool ``name``.

        Accepts a JSON string (empty means no arguments) or a mapping. Checks required keys and
        the simple types string / integer / number / boolean and ``enum``; coerces where harmless
        (``"42"`` -> 42 for an integer, 457892 -> ``"457892"`` for a string); drops unknown keys
        and nulls of optional keys. Raises :class:`ToolError` with a message the model can act on.
        """
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(self._tools) or 'none'}")
        args = _decode(name, raw)
        props: dict[str, Any] = tool.parameters.get("properties", {})
        required: list[str] = list(tool.parameters.get("required", []))
        out: dict[str, Any] = {}
        for key, schema in props.items():
            value = args.get(key)
            if value is None or (isinstance(value, str) and not value.strip() and key in required):
                if key in required:
                    raise ToolError(f"{name}: missing required argument {key!r}")
                continue
            out[key] = _coerce(name, key, value, schema)
        return out

    async def call(self, name: str, raw_args: str | Mapping[str, Any] | None, ctx: ToolContext) -> ToolResult:
        """Validate and run one tool call under its timeout; never raises for a failing call.

        A malformed call, a :class:`ToolError`, another exception or a timeout gives ``ok=False``
        with ``error`` set. Cancellation (barge-in) propagates. Recording the call
        (:meth:`storage.Store.add_tool_call`) and acting on ``effect`` are the caller's job.
        """
        t0 = time.perf_counter()
        try:
            args = self.parse_arguments(name, raw_args)
        except ToolError as e:
            return _failed(name, str(e), t0)
        tool = self._tools[name]
        deadline = asyncio.timeout(tool.timeout_s)
        try:
            async with deadline:
                result = await tool.fn(ctx, args)
            if not isinstance(result, dict):
                raise ToolError(f"{name}: returned {type(result).__name__}, not an object")
        except ToolError as e:
            return _failed(name, str(e), t0)
        except TimeoutError as e:
            if deadline.expired():
                return _failed(name, f"{name}: timed out after {tool.timeout_s:g} s", t0)
            return _failed(name, f"{name}: {type(e).__name__}: {e}", t0)
        except Exception as e:  # a tool bug must not end the call; the model hears an error instead
            return _failed(name, f"{name}: {type(e).__name__}: {e}", t0)
        return ToolResult(name, True, result, None, _ms(t0), tool.effect)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def _failed(name: str, error: str, t0: float) -> ToolResult:
    return ToolResult(name, False, {}, error, _ms(t0))


def _decode(name: str, raw: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ToolError(f"{name}: arguments are not valid JSON ({e.msg} at position {e.pos})") from None
    if not isinstance(value, dict):
        raise ToolError(f"{name}: arguments must be a JSON object, got {type(value).__name__}")
    return value


def _coerce(name: str, key: str, value: Any, schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "string":
        value = _as_string(value)
    elif kind == "integer":
        value = _as_integer(value)
    elif kind == "number":
        value = _as_number(value)
    elif kind == "boolean":
        value = _as_boolean(value)
    if value is None:
        raise ToolError(f"{name}: argument {key!r} must be a {kind}")
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        raise ToolError(f"{name}: argument {key!r} must be one of {', '.join(map(str, enum))}")
    return value


def _as_string(v: Any) -> str | None:
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    return None


def _as_integer(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and _INT.fullmatch(v.strip()):
        return int(v.strip())
    return None


def _as_number(v: Any) -> float | int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return v if math.isfinite(v) else None
    if isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _as_boolean(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    return None


def default_registry() -> ToolRegistry:
    """A registry with the default customer-service tools (see :mod:`agent.tool_defaults`)."""
    from agent.tool_defaults import default_tools  # the defaults build on this module's types

    return ToolRegistry(default_tools())


async def seed_orders(store: Store, path: Path | None) -> int:
    """Fill an empty orders table from ``path`` (a JSON list) or the built-in demo orders.

    Returns how many orders were written: 0 when the table already held some.
    """
    from agent.tool_defaults import seed_orders as seed

    return await seed(store, path)
