"""The fast path: what can be decided without the LLM, in microseconds, and safely.

Given the slots the fast extractor just filled and the recognised intent, :func:`plan` returns
tools to run at once (a complete order number -> ``lookup_order``; a callback request with a
phone number -> ``schedule_callback``; "a real person" -> ``transfer_to_human``; goodbye ->
``end_call``), a template reply when the answer needs no thought (greetings, thanks, asking for
a missing order number, "go on" while digits are still coming), and a short acknowledgement to
speak while a slow answer is being prepared. Everything else goes to the LLM.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from agent.personas import Persona
from agent.slots import words_to_digits
from agent.speech_text import spell_numbers
from agent.state import DialogueState
from agent.tools import Effect

# effectful intents need the words too: an embedding match alone may hang up on "No..."
FAREWELL_RE = re.compile(r"\b(good ?bye|bye|that'?s all|that is all|hang up)\b|再见", re.I)
PERSON_RE = re.compile(r"\b(person|human|agent|manager|someone|somebody|representative|operator|supervisor)\b|人工", re.I)
CALLBACK_RE = re.compile(r"\b(call(ing)? (me )?back|callback|call me|ring me|give me a (call|ring))\b", re.I)
ORDER_INTENTS = {"order_status", "refund", "billing", "cancel"}
TEMPLATE_INTENTS = {"greeting", "thanks", "hours"}
_EXPECT = (
    ("order_number", re.compile(r"\border( number|\s*#)|\baccount number", re.I)),
    ("phone", re.compile(r"\bphone\b|\bnumber (to|we can|I can) (call|reach)|\breach you\b", re.I)),
    ("name", re.compile(r"\byour (full )?name\b", re.I)),
    ("date", re.compile(r"\b(what|which) (day|date|time)\b|\bwhen (would|should|is)\b", re.I)),
)


FAREWELL_WORDS = 6  # "No, that's all. Goodbye." ends the call even when the intent match is loose
SHORT_ANSWER_WORDS = 12  # digits spoken one by one count as one word
TOOL_RESULT = "\x00tool-result"  # Plan.reply placeholder: speak what the tools found


@dataclass(frozen=True, slots=True)
class Plan:
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reply: str | None = None  # speak this and skip the LLM
    ack: str | None = None  # speak this first while the LLM works
    effect: Effect = "none"  # a side effect decided without a tool (the call is already ending)


def plan(
    state: DialogueState,
    persona: Persona,
    intent: str | None,
    changed: dict[str, str],
    caller_text: str,
    pending_digits: str,
    templates: dict[str, tuple[str, ...]],
    pending_phone: str = "",
) -> Plan:
    """Decide the fast-path part of the next reply. Mutates ``state.slots['callback']`` bookkeeping."""
    slots = state.slots
    if CALLBACK_RE.search(caller_text) and slots.get("callback") != "booked":
        slots["callback"] = "requested"
    if intent == "human" and PERSON_RE.search(caller_text):
        reason = slots.get("issue_type", "caller asked for a person")
        return Plan([("transfer_to_human", {"reason": reason})], reply=_first(templates, "human"))
    if state.closing and len(caller_text.split()) <= 4 and "?" not in caller_text:
        # "Goodbye!" over the agent's goodbye cut it short: end_call has run already, the call still ends
        return Plan(reply="Goodbye!", effect="end_call")
    state.closing = False
    farewell = FAREWELL_RE.search(caller_text) is not None
    if farewell and not changed and (intent == "goodbye" or len(caller_text.split()) <= FAREWELL_WORDS):
        return Plan([("end_call", {"reason": "caller said goodbye"})], reply=_first(templates, "goodbye"))
    tools: list[tuple[str, dict[str, Any]]] = []
    if "order_number" in changed:
        tools.append(("lookup_order", {"order_number": changed["order_number"]}))
    elif pending_digits and "order_number" not in slots:
        return Plan(reply=f"Go on, I have {spell_numbers(' '.join(pending_digits))} so far.")
    if pending_phone and "phone" not in changed:
        return Plan(reply=f"Go on, I have {spell_numbers(' '.join(pending_phone))} so far.")
    if slots.get("callback") == "requested" and slots.get("phone"):
        date = slots.get("date") or (dt.date.today().isoformat() if slots.get("time") else "")
        when = " ".join(v for v in (date, slots.get("time")) if v) or "asap"
        tools.append(
            ("schedule_callback", {"phone": slots["phone"], "when": when, "reason": slots.get("issue_type", "callback")})
        )
    if tools and len(words_to_digits(caller_text, digits_expected=True).split()) <= SHORT_ANSWER_WORDS:
        return Plan(tools, reply=TOOL_RESULT)  # the caller only gave the detail: the result is the answer
    if tools:
        return Plan(tools, ack="One moment, let me check that." if tools[0][0] == "lookup_order" else "Let me book that for you.")
    if intent in TEMPLATE_INTENTS and not changed:
        return Plan(reply=_first(templates, intent))
    if intent in ORDER_INTENTS and "order_number" not in slots and set(changed) <= {"issue_type", "urgency"}:
        return Plan(reply=_first(templates, intent))
    return Plan()


def expected_slot(reply: str) -> str | None:
    """The detail a reply asks the caller for, judged from its last question."""
    question = reply.rsplit(".", 1)[-1] if "?" in reply else ""
    for slot, pattern in _EXPECT:
        if pattern.search(question or ""):
            return slot
    return None


def describe(name: str, result: dict[str, Any]) -> str:
    """A one-sentence, speakable summary of a tool result: a fact for the prompt and the spoken fallback."""
    return spell_numbers(_describe(name, result))


def _describe(name: str, result: dict[str, Any]) -> str:
    if name == "lookup_order":
        number = " ".join(str(result.get("order_number", "")))
        if not result.get("found"):
            return f"I couldn't find an order with the number {number}. Could you check it for me?"
        items = ", ".join(result.get("items") or []) or "your items"
        status = str(result.get("status", "")) or "in progress"
        verb = _STATUS.get(status, f"is {status}")
        eta = (
            f" and should arrive {_day(str(result['eta']))}"
            if result.get("eta") and status not in ("delivered", "cancelled")
            else ""
        )
        return f"Your order {number}, {items}, {verb}{eta}."
    if name == "schedule_callback":
        if result.get("scheduled"):
            when = str(result.get("when", "asap"))
            spoken = "as soon as we can" if when == "asap" else _day(when.split()[0]) + _part(when)
            return f"Done. We'll call you back on {' '.join(str(result.get('phone', '')))} {spoken}."
        return "I couldn't book the callback."
    if name == "transfer_to_human":
        return "The caller is being transferred to a person."
    if name == "end_call":
        return "The call is ending."
    return f"{name} done."


_STATUS = {
    "shipped": "has shipped",
    "processing": "is being prepared",
    "delivered": "was delivered",
    "cancelled": "was cancelled",
    "delayed": "is delayed",
}


def _day(iso: str) -> str:
    """'2026-11-25' -> 'on November 25th' ('today' / 'tomorrow' when it is)."""
    try:
        day = dt.date.fromisoformat(iso)
    except ValueError:
        return iso
    delta = (day - dt.date.today()).days
    if delta in (0, 1):
        return ("today", "tomorrow")[delta]
    suffix = "th" if 10 <= day.day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day.day % 10, "th")
    return f"on {day.strftime('%A, %B')} {day.day}{suffix}"


def _part(when: str) -> str:
    rest = when.split()[1:] if " " in when else []
    if not rest:
        return ""
    if rest[0] in ("morning", "afternoon", "evening"):
        return f" in the {rest[0]}"
    hour, _, minute = rest[0].partition(":")
    if not hour.isdigit():
        return f" at {rest[0]}"
    h = int(hour)
    clock = f"{(h - 1) % 12 + 1}" + (f":{minute}" if minute and minute != "00" else "")
    return f" at {clock} {'pm' if h >= 12 else 'am'}"


def _first(templates: dict[str, tuple[str, ...]], intent: str) -> str:
    options = templates.get(intent) or ("How else can I help?",)
    return options[0]
