"""Persistence: every call and every turn, written as they happen (SQLAlchemy 2 async).

SQLite file by default, PostgreSQL by URL (``postgresql+asyncpg://...``). A turn is committed
the moment it is final, so a dropped connection or a crash loses nothing already transcribed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, func, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CallRow(Base):
    __tablename__ = "calls"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    transport: Mapped[str] = mapped_column(String(20), default="websocket")
    language: Mapped[str] = mapped_column(String(8), default="en")
    persona: Mapped[str] = mapped_column(String(64), default="default")
    end_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # NULL on rows written before the column existed (added by Store.open's migration): read as {}
    slots: Mapped[dict[str, str] | None] = mapped_column(JSON, default=dict, nullable=True)


class TurnRow(Base):
    __tablename__ = "turns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(10))
    text: Mapped[str] = mapped_column(Text)
    heard: Mapped[str] = mapped_column(Text)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    t_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EmotionRow(Base):
    """One emotion estimate, utterance summary or alert of a call (``kind`` = the event's type)."""

    __tablename__ = "emotions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    t_ms: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OrderRow(Base):
    """An order the agent can look up by its number (seeded from the deployment's JSON file)."""

    __tablename__ = "orders"
    order_number: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(40))
    items: Mapped[list[str]] = mapped_column(JSON, default=list)
    eta: Mapped[str] = mapped_column(String(32), default="")  # ISO date or ""
    customer_name: Mapped[str] = mapped_column(String(120), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)


class CallbackRow(Base):
    """A callback the agent booked; ``call_id`` is None when booked outside a call."""

    __tablename__ = "callbacks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), nullable=True, index=True)
    phone: Mapped[str] = mapped_column(String(32))
    when: Mapped[str] = mapped_column(String(40))  # ISO date and optional time: "2026-11-23 15:00", "2026-11-23 morning"
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ToolCallRow(Base):
    """One tool call the agent made during a call, with its outcome."""

    __tablename__ = "tool_calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ok: Mapped[bool] = mapped_column(Boolean)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


def _add_missing_columns(conn: Connection) -> list[str]:
    """Additive migration: ``ALTER TABLE ... ADD COLUMN`` for model columns an existing table lacks.

    Added columns are nullable without a server default, so readers must treat NULL as the
    column's default. Returns the ``table.column`` names added.
    """
    insp = inspect(conn)
    quote = conn.dialect.identifier_preparer.quote
    added: list[str] = []
    for table in Base.metadata.sorted_tables:
        if not insp.has_table(table.name):
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name in have or col.primary_key:
                continue
            ddl = col.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(col.name)} {ddl}"))
            added.append(f"{table.name}.{col.name}")
    return added


class Store:
    """The one storage module. Create with :meth:`open` (creates tables), close with :meth:`close`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(cls, url: str) -> Store:
        if url.startswith("sqlite") and ":///" in url:
            path = url.split(":///", 1)[1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(_add_missing_columns)
            await conn.run_sync(Base.metadata.create_all)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def start_call(self, call_id: str, *, transport: str, language: str, persona: str, meta: dict[str, Any]) -> None:
        async with self._sessions.begin() as s:
            s.add(CallRow(id=call_id, transport=transport, language=language, persona=persona, meta=meta))

    async def add_turn(
        self,
        call_id: str,
        seq: int,
        role: str,
        text: str,
        heard: str | None = None,
        interrupted: bool = False,
        t_ms: int = 0,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        async with self._sessions.begin() as s:
            s.add(
                TurnRow(
                    call_id=call_id,
                    seq=seq,
                    role=role,
                    text=text,
                    heard=text if heard is None else heard,
                    interrupted=interrupted,
                    t_ms=t_ms,
                    metrics=metrics or {},
                )
            )

    async def end_call(self, call_id: str, reason: str) -> None:
        async with self._sessions.begin() as s:
            row = await s.get(CallRow, call_id)
            if row is not None and row.ended_at is None:
                row.ended_at = _now()
                row.end_reason = reason

    async def add_emotions(self, call_id: str, events: list[dict[str, Any]]) -> None:
        """Append a batch of emotion events (``type`` emotion / emotion.utterance / emotion.alert)."""
        if not events:
            return
        async with self._sessions.begin() as s:
            s.add_all(EmotionRow(call_id=call_id, kind=str(e.get("type")), t_ms=int(e.get("t_ms", 0)), payload=e) for e in events)

    async def list_calls(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        async with self._sessions() as s:
            rows = (await s.execute(select(CallRow).order_by(CallRow.started_at.desc()).limit(limit).offset(offset))).scalars()
            return [_call_json(r) for r in rows]

    async def get_call(self, call_id: str) -> dict[str, Any] | None:
        async with self._sessions() as s:
            row = await s.get(CallRow, call_id)
            if row is None:
                return None
            turns = (await s.execute(select(TurnRow).where(TurnRow.call_id == call_id).order_by(TurnRow.seq))).scalars()
            out = _call_json(row)
            out["turns"] = [
                {
                    "seq": t.seq,
                    "role": t.role,
                    "text": t.text,
                    "heard": t.heard,
                    "interrupted": t.interrupted,
                    "t_ms": t.t_ms,
                    "metrics": t.metrics,
                }
                for t in turns
            ]
            rows = (await s.execute(select(EmotionRow).where(EmotionRow.call_id == call_id).order_by(EmotionRow.id))).scalars()
            emotions = [r.payload for r in rows]
            out["emotions"] = [e for e in emotions if e.get("type") == "emotion"]
            out["emotion_utterances"] = [e for e in emotions if e.get("type") == "emotion.utterance"]
            out["alerts"] = [e for e in emotions if e.get("type") == "emotion.alert"]
            tools = (
                await s.execute(
                    select(ToolCallRow).where(ToolCallRow.call_id == call_id).order_by(ToolCallRow.seq, ToolCallRow.id)
                )
            ).scalars()
            out["tool_calls"] = [_tool_call_json(t) for t in tools]
            callbacks = (
                await s.execute(select(CallbackRow).where(CallbackRow.call_id == call_id).order_by(CallbackRow.id))
            ).scalars()
            out["callbacks"] = [_callback_json(c) for c in callbacks]
            return out

    async def set_slots(self, call_id: str, slots: dict[str, str]) -> None:
        """Replace the call's slots (what the agent has learned: order number, phone, ...)."""
        async with self._sessions.begin() as s:
            row = await s.get(CallRow, call_id)
            if row is not None:
                row.slots = dict(slots)

    async def count_calls(self) -> int:
        async with self._sessions() as s:
            return int((await s.execute(select(func.count()).select_from(CallRow))).scalar_one())

    # ---- orders, callbacks, tool calls -----------------------------------------------------

    async def get_order(self, order_number: str) -> dict[str, Any] | None:
        """The order's columns as JSON, or None; ``order_number`` must already be normalised."""
        async with self._sessions() as s:
            row = await s.get(OrderRow, order_number)
            return None if row is None else _order_json(row)

    async def upsert_orders(self, orders: list[dict[str, Any]]) -> int:
        """Insert or update orders keyed by ``order_number``; returns how many were written."""
        async with self._sessions.begin() as s:
            for o in orders:
                number = str(o["order_number"])
                row = await s.get(OrderRow, number)
                if row is None:
                    row = OrderRow(order_number=number)
                    s.add(row)
                row.status = str(o.get("status", "unknown"))
                row.items = [str(i) for i in o.get("items", [])]
                row.eta = str(o.get("eta") or "")
                row.customer_name = str(o.get("customer_name") or "")
                row.phone = str(o.get("phone") or "")
                row.updated_at = _now()
        return len(orders)

    async def count_orders(self) -> int:
        async with self._sessions() as s:
            return int((await s.execute(select(func.count()).select_from(OrderRow))).scalar_one())

    async def add_callback(self, call_id: str | None, phone: str, when: str, reason: str) -> dict[str, Any]:
        """Book a callback (status "scheduled"); returns the stored row as JSON, ``id`` included."""
        async with self._sessions.begin() as s:
            row = CallbackRow(call_id=call_id, phone=phone, when=when, reason=reason, status="scheduled")
            s.add(row)
            await s.flush()
            return _callback_json(row)

    async def list_callbacks(self, call_id: str | None = None) -> list[dict[str, Any]]:
        """Callbacks in booking order: all of them, or those booked during ``call_id``."""
        async with self._sessions() as s:
            q = select(CallbackRow).order_by(CallbackRow.id)
            if call_id is not None:
                q = q.where(CallbackRow.call_id == call_id)
            return [_callback_json(r) for r in (await s.execute(q)).scalars()]

    async def add_tool_call(
        self,
        call_id: str,
        seq: int,
        name: str,
        arguments: dict[str, Any],
        ok: bool,
        result: dict[str, Any],
        error: str | None,
        ms: float,
    ) -> None:
        async with self._sessions.begin() as s:
            s.add(ToolCallRow(call_id=call_id, seq=seq, name=name, arguments=arguments, ok=ok, result=result, error=error, ms=ms))

    # ---- cloned voices -----------------------------------------------------------------------

    async def add_voice(self, voice_id: str, **fields: Any) -> None:
        """Store a fitted voice; ``fields`` are :class:`VoiceRow` columns."""
        async with self._sessions.begin() as s:
            s.add(VoiceRow(id=voice_id, **fields))

    async def get_voice(self, voice_id: str) -> dict[str, Any] | None:
        """The voice's columns as JSON (``params`` and ``embedding`` included), or None."""
        async with self._sessions() as s:
            row = await s.get(VoiceRow, voice_id)
            return None if row is None else _voice_json(row, full=True)

    async def list_voices(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Newest first, without the bulky ``params`` and ``embedding``."""
        async with self._sessions() as s:
            rows = (await s.execute(select(VoiceRow).order_by(VoiceRow.created_at.desc()).limit(limit).offset(offset))).scalars()
            return [_voice_json(r, full=False) for r in rows]

    async def count_voices(self) -> int:
        async with self._sessions() as s:
            return int((await s.execute(select(func.count()).select_from(VoiceRow))).scalar_one())

    async def delete_voice(self, voice_id: str) -> bool:
        """Remove a voice's row; False when there was none. Its files are the caller's to remove."""
        async with self._sessions.begin() as s:
            row = await s.get(VoiceRow, voice_id)
            if row is None:
                return False
            await s.delete(row)
            return True


def _call_json(r: CallRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "started_at": r.started_at.isoformat() if r.started_at else None,
        "ended_at": r.ended_at.isoformat() if r.ended_at else None,
        "transport": r.transport,
        "language": r.language,
        "persona": r.persona,
        "end_reason": r.end_reason,
        "meta": r.meta,
        "slots": r.slots or {},
    }


def _order_json(r: OrderRow) -> dict[str, Any]:
    return {
        "order_number": r.order_number,
        "status": r.status,
        "items": list(r.items or []),
        "eta": r.eta or "",
        "customer_name": r.customer_name or "",
        "phone": r.phone or "",
        "updated_at": _iso(r.updated_at),
    }


def _callback_json(r: CallbackRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "call_id": r.call_id,
        "phone": r.phone,
        "when": r.when,
        "reason": r.reason,
        "status": r.status,
        "created_at": _iso(r.created_at),
    }


def _tool_call_json(r: ToolCallRow) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "name": r.name,
        "arguments": r.arguments,
        "ok": r.ok,
        "result": r.result,
        "error": r.error,
        "ms": r.ms,
        "created_at": _iso(r.created_at),
    }


def _iso(t: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC; SQLite hands back naive datetimes for what was written as UTC."""
    if t is None:
        return None
    return (t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)).isoformat()


class VoiceRow(Base):
    """A cloned voice: its fitted parameters, the reference it came from, and how alike it sounds."""

    __tablename__ = "voices"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    staff_code: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    engine: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    embedding: Mapped[list[float]] = mapped_column(JSON, default=list)  # the reference's d-vector
    reference_path: Mapped[str] = mapped_column(Text)  # the voice's directory under <data_dir>/voices
    transcript: Mapped[str | None] = mapped_column(Text, nullable=True)
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    similarity: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def _voice_json(r: VoiceRow, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id,
        "name": r.name,
        "staff_code": r.staff_code,
        "created_at": r.created_at.isoformat() if r.created_at else None,
        "engine": r.engine,
        "transcript": r.transcript,
        "checks": r.checks,
        "similarity": r.similarity,
    }
    if full:
        out["params"] = r.params
        out["embedding"] = r.embedding
        out["reference_path"] = r.reference_path
    return out
