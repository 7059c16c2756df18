"""The LLM adapter: tool calls out of streamed text, and the real OpenAI client against a local server."""

from __future__ import annotations

import json

import pytest

from models.llm import TextDelta, ToolCall, ToolCallParser


def _run(pieces: list[str]) -> list[TextDelta | ToolCall]:
    parser = ToolCallParser()
    out: list[TextDelta | ToolCall] = []
    for piece in pieces:
        out.extend(parser.push(piece))
    out.extend(parser.flush())
    return out


def _text(items: list[TextDelta | ToolCall]) -> str:
    return "".join(i.text for i in items if isinstance(i, TextDelta))


def _calls(items: list[TextDelta | ToolCall]) -> list[tuple[str, dict[str, object]]]:
    return [(i.name, json.loads(i.arguments)) for i in items if isinstance(i, ToolCall)]


REPLY = 'Let me check. <tool_call>\n{"name": "lookup_order", "arguments": {"order_number": "457892"}}\n</tool_call>'


@pytest.mark.parametrize("size", [1, 2, 5, 11, len(REPLY)])
def test_tool_call_tags_split_anywhere(size: int) -> None:
    items = _run([REPLY[i : i + size] for i in range(0, len(REPLY), size)])
    assert _text(items) == "Let me check. "
    assert _calls(items) == [("lookup_order", {"order_number": "457892"})]


def test_plain_text_passes_through_and_lone_angle_brackets_are_released() -> None:
    items = _run(["The price is <", "10 dollars", " and <tool", "s> are fine."])
    assert _text(items) == "The price is <10 dollars and <tools> are fine."
    assert _calls(items) == []


def test_malformed_tool_call_is_a_nameless_call_for_the_registry_to_reject() -> None:
    items = _run(["<tool_call>{not json}</tool_call>"])
    assert len(items) == 1 and isinstance(items[0], ToolCall)
    assert items[0].name == "" and items[0].arguments == "{not json}"


def test_unterminated_tool_call_is_still_handed_over() -> None:
    items = _run(['<tool_call>{"name": "end_call", "arguments": {}}'])
    assert _calls(items) == [("end_call", {})]


def test_bare_json_reply_is_read_as_a_tool_call() -> None:
    # what Qwen2.5-Coder-1.5B writes when its template's doubled braces leak into the answer
    items = _run(['{{"name": "transfer_to_human", ', '"arguments": {"reason": "asked"}}}'])
    assert _calls(items) == [("transfer_to_human", {"reason": "asked"})]
    assert _text(items) == ""


def test_reply_opening_with_a_brace_that_is_not_a_call_is_spoken() -> None:
    items = _run(["{curly} words"])
    assert _text(items) == "{curly} words" and _calls(items) == []
