"""Personas: who the agent is, how it greets, and what it answers for each intent."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Intent:
    """An intent: example phrases it is recognised by and the replies it is answered with."""

    name: str
    examples: tuple[str, ...]
    replies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Persona:
    """A deployment's or a staff member's agent."""

    name: str
    agent_name: str
    greeting: str
    fallback: tuple[str, ...]
    intents: tuple[Intent, ...] = field(default_factory=tuple)
    language: str = "en"


_EN_INTENTS = (
    Intent(
        "order_status",
        (
            "where is my order",
            "I want to check the status of my order",
            "my package hasn't arrived yet",
            "when will my delivery come",
            "can you track my parcel",
            "我的订单在哪里",
            "我的包裹还没到",
        ),
        (
            "I can help with that. Could you tell me your order number, please?",
            "Sure, let me look into your delivery. What is the order number?",
        ),
    ),
    Intent(
        "refund",
        (
            "I want a refund",
            "I'd like my money back",
            "can I return this item",
            "the product is broken and I want to return it",
            "我要退款",
            "我想退货",
        ),
        (
            "I'm sorry about that. I can start a return for you. Which order is it about?",
            "Of course. Refunds usually take three to five days. What is the order number?",
        ),
    ),
    Intent(
        "billing",
        (
            "I was charged twice",
            "there is a wrong charge on my bill",
            "question about my invoice",
            "why is my bill so high",
            "我的账单有问题",
        ),
        (
            "I understand, billing mistakes are frustrating. Let me check your account. Can you give me the account number?",
        ),
    ),
    Intent(
        "cancel",
        (
            "I want to cancel my subscription",
            "please close my account",
            "stop my membership",
            "取消我的订阅",
        ),
        ("I can help you cancel. Before I do, may I ask what made you decide to leave?",),
    ),
    Intent(
        "human",
        (
            "let me talk to a real person",
            "I want to speak to a manager",
            "transfer me to a human agent",
            "我要找人工客服",
        ),
        ("Of course. I'll connect you with a member of our team. Please stay on the line.",),
    ),
    Intent(
        "greeting",
        ("hello", "hi there", "good morning", "hey, are you there", "你好"),
        ("Hello! How can I help you today?",),
    ),
    Intent(
        "thanks",
        ("thank you", "thanks, that's all", "great, thanks for your help", "谢谢"),
        ("You're welcome! Is there anything else I can do for you?",),
    ),
    Intent(
        "goodbye",
        ("goodbye", "bye, have a nice day", "that's all, bye", "再见"),
        ("Thank you for calling. Have a great day. Goodbye!",),
    ),
    Intent(
        "hours",
        ("what are your opening hours", "when are you open", "are you open on sunday", "你们几点开门"),
        ("We're open from nine in the morning to six in the evening, Monday to Saturday.",),
    ),
)

DEFAULT_PERSONA = Persona(
    name="default",
    agent_name="Joe",
    greeting="Hello, thank you for calling. My name is Joe. How can I help you today?",
    fallback=(
        "I see. Could you tell me a little more about that?",
        "Thanks for explaining. Can you give me a few more details so I can help?",
    ),
    intents=_EN_INTENTS,
)


def load_personas(path: Path | None) -> dict[str, Persona]:
    """The built-in persona plus any in a JSON file ``{"name": {"agent_name":..., "greeting":..., ...}}``."""
    personas = {DEFAULT_PERSONA.name: DEFAULT_PERSONA}
    if path is None or not path.exists():
        return personas
    raw = json.loads(path.read_text(encoding="utf-8"))
    for name, spec in raw.items():
        intents = tuple(
            Intent(i["name"], tuple(i["examples"]), tuple(i["replies"])) for i in spec.get("intents", [])
        ) or DEFAULT_PERSONA.intents
        personas[name] = Persona(
            name=name,
            agent_name=spec.get("agent_name", DEFAULT_PERSONA.agent_name),
            greeting=spec.get("greeting", DEFAULT_PERSONA.greeting),
            fallback=tuple(spec.get("fallback", DEFAULT_PERSONA.fallback)),
            intents=intents,
            language=spec.get("language", "en"),
        )
    return personas
