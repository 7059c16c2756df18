"""Personas: who the agent is, how it greets and speaks, what it knows, which tools it may use.

A deployment lists its personas (one per brand or per staff member) in ``<data_dir>/personas.json``;
a caller picks one with ``session.start``'s ``"persona"``.
"""

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
    company: str = "Parley Shop"
    style: str = "Warm, calm and brief. Use the caller's name once you know it."
    knowledge: tuple[str, ...] = ()  # facts the agent may state (opening hours, policies, ...)
    tools: tuple[str, ...] | None = None  # tools the LLM may call; None -> every registered tool
    policy: str = "llm"  # llm | intent
    max_sentences: int = 2  # a spoken reply, not an essay
    apology: str = "I'm sorry, I'm having trouble answering right now. Could you say that again in a moment?"
    fillers: tuple[str, ...] = ("Okay.", "I see.", "Alright, let me see.", "Right.")  # said while the LLM thinks


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
        ("I understand, billing mistakes are frustrating. Let me check your account. Can you give me the account number?",),
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
    knowledge=(
        "Opening hours: nine in the morning to six in the evening, Monday to Saturday.",
        "Refunds reach the card three to five working days after a return arrives.",
        "Delivery is free over fifty dollars; standard delivery takes two to four days.",
        "Returns are accepted within thirty days of delivery.",
    ),
)

_STR_FIELDS = ("agent_name", "greeting", "language", "company", "style", "policy", "apology")


def load_personas(path: Path | None) -> dict[str, Persona]:
    """The built-in persona plus any in a JSON file ``{"name": {"agent_name":..., "greeting":..., ...}}``."""
    personas = {DEFAULT_PERSONA.name: DEFAULT_PERSONA}
    if path is None or not path.exists():
        return personas
    raw = json.loads(path.read_text(encoding="utf-8"))
    for name, spec in raw.items():
        intents = (
            tuple(Intent(i["name"], tuple(i["examples"]), tuple(i["replies"])) for i in spec.get("intents", []))
            or DEFAULT_PERSONA.intents
        )
        tools = spec.get("tools")
        personas[name] = Persona(
            name=name,
            fallback=tuple(spec.get("fallback", DEFAULT_PERSONA.fallback)),
            intents=intents,
            knowledge=tuple(spec.get("knowledge", DEFAULT_PERSONA.knowledge)),
            fillers=tuple(spec.get("fillers", DEFAULT_PERSONA.fillers)),
            tools=tuple(tools) if tools is not None else None,
            max_sentences=int(spec.get("max_sentences", DEFAULT_PERSONA.max_sentences)),
            **{k: str(spec.get(k, getattr(DEFAULT_PERSONA, k))) for k in _STR_FIELDS},  # type: ignore[arg-type]
        )
        if personas[name].policy not in ("llm", "intent"):
            raise ValueError(f"persona {name!r}: policy must be 'llm' or 'intent'")
    return personas
