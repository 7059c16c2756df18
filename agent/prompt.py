"""Chat messages for the LLM, laid out so the model server can reuse its prompt cache.

The system prompt depends only on the persona (and the tools the template adds after it), so
it is the same on every turn of every call with that persona; history follows; what changes
from turn to turn (slots, emotion, tool facts) goes in a short note just before the caller's
last words.
"""

from __future__ import annotations

import json
from typing import Any

from agent.personas import Persona
from agent.state import DialogueState

HISTORY_TURNS = 12
SLOT_LABELS = {
    "name": "caller's name",
    "order_number": "order number",
    "phone": "phone",
    "date": "date",
    "time": "time",
}  # issue type and urgency steer the fast path; in the prompt the small model only echoed them


def system_prompt(persona: Persona, tools: bool = False) -> str:
    """Kept short: every token of it is evaluated on CPU before the first reply of a call."""
    lines = [
        f"You are {persona.agent_name}, a customer-service agent for {persona.company}, talking to a caller on the phone.",
        persona.style,
        f"Answer in at most {persona.max_sentences} short spoken sentences. Plain words only, no lists.",
        "Never invent order details; if you need an order number or a phone number, ask for it.",
    ]
    if tools:
        lines.append("Use a tool to look up an order, book a callback, hand the call to a person, or end the call.")
    if persona.language != "en":
        lines.append(f"Answer in the caller's language ({persona.language}).")
    if persona.knowledge:
        lines.append("Facts you may use:")
        lines.extend(f"- {fact}" for fact in persona.knowledge)
    return "\n".join(lines)


def context_note(state: DialogueState) -> str | None:
    """What the agent knows right now, or ``None`` when there is nothing to say."""
    parts: list[str] = []
    known = [f"{SLOT_LABELS.get(k, k)}: {v}" for k, v in state.slots.items() if k in SLOT_LABELS and v]
    if known:
        parts.append("the caller's " + "; ".join(known))
    if state.facts:
        parts.append("what you found: " + " ".join(state.facts[-3:]))
    if state.emotion:
        upset = max(state.emotion.get("angry", 0.0), state.emotion.get("sad", 0.0))
        if upset > 0.5:
            parts.append("the caller sounds upset, so acknowledge it briefly and kindly")
    return f"(Context for you, not to be read out: {'. '.join(parts)}.)" if parts else None


SYMPATHY = "I'm sorry to hear that."


def _without_filler(text: str, fillers: tuple[str, ...]) -> str:
    """The agent's words without the acknowledgement said while the LLM thought (the model copies them)."""
    for filler in fillers:
        if text.startswith(filler + " "):
            return text[len(filler) + 1 :]
    return text


def build_messages(
    persona: Persona, state: DialogueState, tool_rounds: list[dict[str, Any]] | None = None, tools: bool = False
) -> list[dict[str, Any]]:
    """Messages for the next reply: system, recent history as heard, context notes, tool rounds.

    Each caller turn keeps the note written when it was answered (only when it says something
    new), so earlier turns render the same way every time and the model server's prompt cache
    covers all but the newest turn.
    """
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt(persona, tools)}]
    fillers = (*persona.fillers, SYMPATHY)
    history = [t for t in state.turns if t.heard][-HISTORY_TURNS:]
    last_note = ""
    for i, turn in enumerate(history):
        if turn.role == "caller" and i == len(history) - 1 and turn.note is None:
            note = context_note(state) or ""
            turn.note = "" if note == last_note else note  # only what changed: fewer tokens to evaluate
        if turn.role == "caller" and turn.note:
            messages.append({"role": "system", "content": turn.note})
            last_note = turn.note
        role = "user" if turn.role == "caller" else "assistant"
        content = turn.heard if turn.role == "caller" else _without_filler(turn.heard, fillers)
        content += " (interrupted)" if turn.interrupted else ""
        if messages[-1]["role"] == role:  # two caller turns in a row: merge, templates expect alternation
            messages[-1]["content"] += " " + content
        else:
            messages.append({"role": role, "content": content})
    messages.extend(tool_rounds or [])
    return messages


def tool_call_message(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": "",  # not null: llama.cpp's server rejects it
        "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}],
    }


def tool_result_message(call_id: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)}
