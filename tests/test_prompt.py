"""Prompt layout: stable prefix for the model server's cache, context before the caller's words, no fillers."""

from __future__ import annotations

from agent.personas import DEFAULT_PERSONA
from agent.prompt import build_messages, system_prompt
from agent.state import DialogueState


def test_history_is_rendered_the_same_way_on_later_turns() -> None:
    state = DialogueState()
    state.add_agent("Hello, how can I help?", "Hello, how can I help?", False)
    state.add_caller("My order number is 457892.")
    state.slots["order_number"] = "457892"
    first = build_messages(DEFAULT_PERSONA, state)
    state.add_agent("Okay. It has shipped.", "Okay. It has shipped.", False)
    state.add_caller("Thanks, when will it arrive?")
    second = build_messages(DEFAULT_PERSONA, state)
    assert second[: len(first)] == first  # earlier turns unchanged: a cached prefix
    assert first[0] == {"role": "system", "content": system_prompt(DEFAULT_PERSONA)}
    note = first[-2]
    assert note["role"] == "system" and "457892" in note["content"] and "not to be read out" in note["content"]
    assert first[-1] == {"role": "user", "content": "My order number is 457892."}
    # nothing new since the last note: no second note; the filler said while thinking is not shown to the model
    assert [m["role"] for m in second[len(first) :]] == ["assistant", "user"]
    assert second[len(first)]["content"] == "It has shipped."


def test_interrupted_reply_is_kept_as_heard() -> None:
    state = DialogueState()
    state.add_caller("Hi")
    state.add_agent("Hello! How can I help you today?", "Hello!", True)
    state.add_caller("Where is my parcel?")
    messages = build_messages(DEFAULT_PERSONA, state)
    assert messages[-2] == {"role": "assistant", "content": "Hello! (interrupted)"}
