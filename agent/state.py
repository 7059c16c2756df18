"""Dialogue state: the call's history as the caller actually experienced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(slots=True)
class Turn:
    """One utterance. For the agent, ``text`` is what it meant to say and ``heard`` what was played."""

    role: Literal["caller", "agent"]
    text: str
    heard: str
    interrupted: bool = False
    intent: str | None = None
    t_ms: int = 0
    note: str | None = None  # what the agent knew when it answered this caller turn (kept: prompt cache)


@dataclass(slots=True)
class DialogueState:
    """Everything the policy may look at. Mutated only by the call session."""

    language: str = "en"
    persona: str = "default"
    turns: list[Turn] = field(default_factory=list)
    last_intent: str | None = None
    emotion: dict[str, float] | None = None
    slots: dict[str, str] = field(default_factory=dict)
    expecting: str | None = None  # the slot the agent has just asked for
    facts: list[str] = field(default_factory=list)  # short results of tools used in this call
    closing: bool = False  # the agent has said goodbye (end_call); a short reply to it still ends the call

    def add_caller(self, text: str, t_ms: int = 0) -> Turn:
        turn = Turn("caller", text, text, t_ms=t_ms)
        self.turns.append(turn)
        return turn

    def add_agent(self, text: str, heard: str, interrupted: bool, intent: str | None = None) -> Turn:
        """Record a reply; ``heard`` is the part that was played before any barge-in."""
        turn = Turn("agent", text, heard, interrupted, intent)
        self.turns.append(turn)
        return turn

    def last_caller_text(self) -> str:
        for turn in reversed(self.turns):
            if turn.role == "caller":
                return turn.text
        return ""

    def history(self) -> list[tuple[str, str]]:
        """(role, text) pairs, agent turns as heard: what an LLM prompt should see."""
        return [(t.role, t.heard) for t in self.turns if t.heard]
