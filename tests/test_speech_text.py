"""Speakable LLM text: markdown stripped, numbers as words, caps, and a stream equal to the batch."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from agent.speech_text import (
    StreamSanitizer,
    cap_reply,
    for_speech,
    number_to_words,
    ordinal_words,
    spell_digits,
    spell_numbers,
    strip_markdown,
    year_words,
)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (20, "twenty"),
        (23, "twenty-three"),
        (100, "one hundred"),
        (105, "one hundred five"),
        (1250, "one thousand two hundred fifty"),
        (1_000_001, "one million one"),
        (-4, "minus four"),
    ],
)
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (12, "twelfth"),
        (20, "twentieth"),
        (23, "twenty-third"),
        (101, "one hundred first"),
    ],
)
def test_ordinal_words(n: int, words: str) -> None:
    assert ordinal_words(n) == words


def test_digits_and_years() -> None:
    assert spell_digits("4578-0") == "four five seven eight zero"
    assert year_words(2026) == "twenty twenty-six"
    assert year_words(2005) == "two thousand five"
    assert year_words(1999) == "nineteen ninety-nine"
    assert year_words(1905) == "nineteen oh five"
    assert year_words(1900) == "nineteen hundred"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Your order 457892 has shipped", "Your order four five seven eight nine two has shipped"),
        ("Order 457 892", "Order four five seven eight nine two"),
        ("ticket 45", "ticket four five"),
        ("Your order number is 457.", "Your order number is four five seven."),
        ("order #12", "order number one two"),
        ("Call 555-123-4567", "Call five five five, one two three, four five six seven"),
        ("Call (555) 123-4567", "Call five five five, one two three, four five six seven"),
        ("It costs $12.50", "It costs twelve dollars and fifty cents"),
        ("only $1", "only one dollar"),
        ("just $0.99", "just ninety-nine cents"),
        ("£3.05", "three pounds and five pence"),
        ("3.5 times", "three point five times"),
        ("20% off", "twenty percent off"),
        ("at 9:30", "at nine thirty"),
        ("at 9:05", "at nine oh five"),
        ("at 9:00", "at nine o'clock"),
        ("at 9:30 am", "at nine thirty A M"),
        ("at 3 pm", "at three P M"),
        ("at 3pm.", "at three P M."),
        ("the 23rd", "the twenty-third"),
        ("on November 23", "on November twenty-third"),
        ("November 23, 2026", "November twenty-third, twenty twenty-six"),
        ("in 2026", "in twenty twenty-six"),
        ("code 2026", "code two zero two six"),
        ("3 days", "three days"),
        ("1,250 points", "one thousand two hundred fifty points"),
        ("5-7 days", "five to seven days"),
        ("on 2026-11-23", "on November twenty-third, twenty twenty-six"),
        ("agent 007", "agent zero zero seven"),
        ("ref A457", "ref A four five seven"),
        ("a 5G phone", "a five G phone"),
        ("no numbers here.", "no numbers here."),
    ],
)
def test_spell_numbers(text: str, spoken: str) -> None:
    assert spell_numbers(text) == spoken


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("This is **very** important", "This is very important"),
        ("An *italic* and _under_ word, snake_case stays", "An italic and under word, snake_case stays"),
        ("Run `reset` now", "Run reset now"),
        ("See [our help page](https://x.com/help) today", "See our help page today"),
        ("Go to https://example.com/track?id=1.", "Go to the link."),
        ("Visit www.example.com, then call", "Visit the link, then call"),
        ("# Order status\nIt shipped", "Order status. It shipped"),
        (
            "Here is what to do:\n- Restart the router\n- Wait a minute\n",
            "Here is what to do: Restart the router. Wait a minute.",
        ),
        ("Steps:\n1. Open the app.\n2) Tap Orders", "Steps: Open the app. Tap Orders."),
        ("* one\n* two", "one. two."),
        ("First line\nsecond line", "First line second line"),
        ("Para one\n\nPara two", "Para one. Para two"),
        ("| Item | Price |\n|---|---:|\n| Lamp | $20 |", "Item, Price. Lamp, $20."),
        ("```\nreboot now\n```\nDone", "reboot now. Done"),
        ("Great news 🎉 it shipped ✅", "Great news it shipped"),
        ("> quoted text", "quoted text"),
        ("---\nAfter the rule", "After the rule"),
        ("~~old~~ new", "old new"),
        ("2 * 3 = 6", "2 * 3 = 6"),
    ],
)
def test_strip_markdown(text: str, plain: str) -> None:
    assert strip_markdown(text) == plain


@pytest.mark.parametrize(
    ("text", "kwargs", "capped"),
    [
        ("One. Two. Three. Four.", {}, "One. Two. Three."),
        ("One. Two. Three. Four.", {"max_sentences": 2}, "One. Two."),
        ("Short one. A second sentence that is long.", {"max_chars": 20}, "Short one."),
        ("This sentence is far too long for the cap, really.", {"max_chars": 25}, "This sentence is far too."),
        ("Hello there, friend and more words", {"max_chars": 20}, "Hello there, friend."),
        ("Hi, friend how are", {"max_chars": 12}, "Hi, friend."),
        ("Hello there, whatever", {"max_chars": 14}, "Hello there."),
        ("Supercalifragilistic", {"max_chars": 10}, "Supercali."),
        ("Is it? Yes! Sure.", {}, "Is it? Yes! Sure."),
        ("   Leading space.  Two.  ", {}, "Leading space. Two."),
        ("No period at the end", {}, "No period at the end"),
        ("", {}, ""),
    ],
)
def test_cap_reply(text: str, kwargs: dict[str, int], capped: str) -> None:
    assert cap_reply(text, **kwargs) == capped


def test_cap_reply_keeps_every_fitting_sentence_within_max_chars() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(10))
    out = cap_reply(text, max_sentences=10, max_chars=100)
    assert len(out) <= 100
    assert out == "Sentence number 0 is here. Sentence number 1 is here. Sentence number 2 is here."


def test_for_speech_pipeline() -> None:
    text = "## Your order\nOrder **457892** ships in 3 days. It cost $12.50!\n- Call 555-123-4567\n- Thanks 😀"
    assert for_speech(text) == (
        "Your order. Order four five seven eight nine two ships in three days. It cost twelve dollars and fifty cents!"
    )


STREAM_TEXTS = [
    "## Your order\nYour order **457892** ships in 3 days. It cost $12.50, 20% off!\n- Call 555-123-4567 at 9:30\n- Visit [our site](https://x.com/a_b) 😀\n",
    "Sure! Here are the steps:\n\n1. Restart the *router*.\n2. Wait `30` seconds\n3. Check the light\n\n| Plan | Price |\n|---|---|\n| Basic | $5 |\n",
    "I found order 457 892 from November 23, 2026 at 3 pm. It was 1,250 dollars, about 3.5 times more. Call us on the 23rd. Dropped.",
    "```python\nprint(1)\n```\nDone, see www.example.com/help. ~~old~~ new **bold _it_** text * star 2 * 3",
    "A" * 50 + " word" * 80,
    "Thanks for waiting, Maria, your refund of $45 was approved on 2026-11-20 and should arrive within 5-7 business days, "
    "which means by next week at the latest, and you will get an email too. Anything else?",
    "---\n> Quote line one\n> line two 42\n\n* item one\n* item two\n***\nEnd",
    "Your callback is booked for 3:30 pm on Friday, November 27. We'll call 555 123 4567. Bye!",
]


def chunkings(text: str, rng: random.Random) -> Iterator[list[str]]:
    yield [text]
    for size in (1, 2, 3, 5, 7, 13):
        yield [text[i : i + size] for i in range(0, len(text), size)]
    for _ in range(15):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 30))))
        yield [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def stream(pieces: list[str], **caps: int) -> str:
    sanitizer = StreamSanitizer(**caps)
    return "".join(sanitizer.push(p) for p in pieces) + sanitizer.flush()


@pytest.mark.parametrize("text", STREAM_TEXTS)
@pytest.mark.parametrize("caps", [{}, {"max_sentences": 2, "max_chars": 90}, {"max_sentences": 9, "max_chars": 1000}])
def test_stream_equals_batch(text: str, caps: dict[str, int]) -> None:
    want = for_speech(text, **caps)
    assert want
    for pieces in chunkings(text, random.Random(len(text))):
        assert stream(pieces, **caps) == want, pieces


def test_stream_releases_words_early_and_holds_numbers() -> None:
    sanitizer = StreamSanitizer()
    assert sanitizer.push("Your order ") == "Your"
    assert sanitizer.push("number is 45") == " order number"
    assert sanitizer.push("7892 and it") == " is"
    assert sanitizer.push(" ships **to") == " four five seven eight nine two and it"
    assert sanitizer.push("day** ok. ") == " ships today"
    assert sanitizer.flush() == " ok."


def test_stream_truncates_after_max_sentences() -> None:
    sanitizer = StreamSanitizer(max_sentences=2)
    assert sanitizer.push("One. Two. ") == "One."
    assert sanitizer.push("Three") == ""
    assert not sanitizer.truncated
    assert sanitizer.push(" more. ") == " Two."
    assert sanitizer.truncated
    assert sanitizer.push("Four. ") == ""
    assert sanitizer.flush() == ""


def test_stream_truncates_a_long_first_sentence() -> None:
    sanitizer = StreamSanitizer(max_chars=30)
    out = "".join(sanitizer.push(w + " ") for w in "this first sentence runs on and on and on forever".split())
    assert sanitizer.truncated
    assert out + sanitizer.flush() == "this first sentence runs on."
