"""Slot extraction from ASR-style transcripts: spoken digits, order numbers over two turns, dates."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from agent.slots import SLOT_NAMES, SlotFiller, extract_date, extract_name, extract_time, merge, words_to_digits

TODAY = dt.date(2026, 11, 22)  # a Sunday


def fill(text: str, expecting: str | None = None) -> dict[str, str]:
    return SlotFiller().update(text, expecting=expecting, today=TODAY)


def test_today_is_a_sunday() -> None:
    assert TODAY.weekday() == 6
    assert SLOT_NAMES == ("name", "order_number", "phone", "date", "issue_type", "urgency")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("four five seven", "457"),
        ("Four, five, seven.", "457."),
        ("double seven", "77"),
        ("triple one two", "1112"),
        ("double oh seven", "007"),
        ("five oh one", "501"),
        ("4 5 7-8", "4578"),
        ("555 123 4567", "5551234567"),
        ("five five five, one two three, four five six seven", "5551234567"),
        ("four five seven. Eight nine two.", "457892."),
        ("twenty three", "23"),
        ("twenty-three", "23"),
        ("twelve thirty four", "1234"),
        ("November twenty third", "November 23rd"),
        ("November 23, 2026", "November 23, 2026"),
        ("the one I ordered", "the one I ordered"),
        ("I have two questions", "I have two questions"),
        ("Oh, one more thing", "Oh, one more thing"),
        ("it costs 3.50 at 9:30", "it costs 3.50 at 9:30"),
        ("on 2026-11-23", "on 2026-11-23"),
        ("double trouble", "double trouble"),
        ("我的订单号是四五七八九二", "我的订单号是457892"),
        ("一个", "一个"),
    ],
)
def test_words_to_digits(text: str, expected: str) -> None:
    assert words_to_digits(text) == expected


def test_lone_digit_word_counts_only_when_digits_expected() -> None:
    assert words_to_digits("it's seven") == "it's seven"
    assert words_to_digits("it's seven", digits_expected=True) == "it's 7"
    assert words_to_digits("oh seven two", digits_expected=True) == "072"


def test_order_number_in_one_turn() -> None:
    assert fill("Hi, my order number is four five seven eight nine two.") == {"order_number": "457892"}
    assert fill("order #457892 please")["order_number"] == "457892"
    assert fill("it's for order 4 5 7 8 9 2")["order_number"] == "457892"
    assert fill("The order, the number is 12345")["order_number"] == "12345"


def test_order_number_over_two_turns() -> None:
    filler = SlotFiller()
    assert filler.update("my order number is four five seven", today=TODAY) == {}
    assert filler.pending_order_digits == "457"
    assert filler.update("eight nine two", today=TODAY) == {"order_number": "457892"}
    assert filler.pending_order_digits == ""
    assert filler.filled["order_number"] == "457892"


def test_pending_order_survives_a_pause_while_expected() -> None:
    filler = SlotFiller()
    filler.update("the order number is 4 5", today=TODAY)
    assert filler.update("uh, hold on", expecting="order_number", today=TODAY) == {}
    assert filler.pending_order_digits == "45"
    assert filler.update("seven eight nine", expecting="order_number", today=TODAY) == {"order_number": "45789"}


def test_pending_order_dropped_when_the_talk_moves_on() -> None:
    filler = SlotFiller()
    filler.update("order number four five seven", today=TODAY)
    filler.update("sorry what was that", today=TODAY)
    assert filler.pending_order_digits == ""
    assert filler.update("I waited 12 days", today=TODAY) == {}


def test_bare_digits_count_when_expecting_order_number() -> None:
    assert fill("it's 4 5 7 8 9", expecting="order_number") == {"order_number": "45789"}
    assert fill("45789") == {}
    assert fill("my order from 3 weeks ago") == {}


def test_order_number_restated_replaces_pending() -> None:
    filler = SlotFiller()
    filler.update("order number four five", today=TODAY)
    assert filler.update("no wait, my order number is 9 8 7 6 5", today=TODAY) == {"order_number": "98765"}


def test_phone_numbers() -> None:
    assert fill("call me back at five five five, one two three, four five six seven") == {"phone": "5551234567"}
    assert fill("my number is 555-123-4567")["phone"] == "5551234567"
    assert fill("my phone number is oh seven seven double oh one two three four five six") == {"phone": "07700123456"}
    assert fill("5 5 5 1 2 3 4", expecting="phone") == {"phone": "5551234"}
    assert fill("call me at 555") == {}


def test_phone_and_order_in_one_utterance() -> None:
    got = fill("my order number is 457892 and you can call me on 555 123 4567")
    assert got == {"order_number": "457892", "phone": "5551234567"}


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("today please", "2026-11-22"),
        ("tomorrow", "2026-11-23"),
        ("the day after tomorrow", "2026-11-24"),
        ("on Monday", "2026-11-23"),
        ("next Friday", "2026-11-27"),
        ("Sunday", "2026-11-29"),
        ("November 23rd", "2026-11-23"),
        ("November twenty third", "2026-11-23"),
        ("the 23rd", "2026-11-23"),
        ("the 5th", "2026-12-05"),
        ("23 November", "2026-11-23"),
        ("the third of December", "2026-12-03"),
        ("January 3rd", "2027-01-03"),
        ("December the first, 2027", "2027-12-01"),
        ("2026-12-01", "2026-12-01"),
    ],
)
def test_dates(text: str, date: str) -> None:
    assert fill(text)["date"] == date


def test_ordinal_word_alone_needs_date_expected() -> None:
    assert "date" not in fill("the first one I ordered")
    assert fill("the first", expecting="date")["date"] == "2026-12-01"
    assert extract_date("no date here", TODAY) is None


@pytest.mark.parametrize(
    ("text", "time"),
    [
        ("at 3 pm", "15:00"),
        ("at 3pm", "15:00"),
        ("at three thirty", "15:30"),
        ("at three thirty in the morning", "03:30"),
        ("at 9:30", "09:30"),
        ("at 10 a.m.", "10:00"),
        ("at twelve pm", "12:00"),
        ("at eleven", "11:00"),
        ("at noon", "12:00"),
        ("in the morning", "morning"),
        ("this afternoon", "afternoon"),
        ("tonight", "evening"),
    ],
)
def test_times(text: str, time: str) -> None:
    assert extract_time(words_to_digits(text).lower()) == time


def test_no_time_in_a_phone_number() -> None:
    assert extract_time(words_to_digits("call me at 5551234567").lower()) is None


def test_date_and_time_together() -> None:
    assert fill("can you call me tomorrow at 3 pm") == {"date": "2026-11-23", "time": "15:00"}


@pytest.mark.parametrize(
    ("text", "expecting", "name"),
    [
        ("my name is Maria Lopez", None, "Maria Lopez"),
        ("my name is maria lopez and I need help", None, "Maria Lopez"),
        ("Hi, this is Maria from Acme", None, "Maria"),
        ("I'm Sarah and I need help", None, "Sarah"),
        ("It's John.", "name", "John"),
        ("maria lopez", "name", "Maria Lopez"),
        ("yes it is Peter O'Brien", "name", "Peter O'Brien"),
        ("我叫王小明，我要退款", None, "王小明"),
    ],
)
def test_names(text: str, expecting: str | None, name: str) -> None:
    assert extract_name(text, expecting) == name


@pytest.mark.parametrize(
    "text",
    [
        "I'm calling about my order",
        "I'm angry",
        "I'm not happy",
        "This is ridiculous",
        "I'm Calling About A Refund",
        "this is about my refund",
    ],
)
def test_name_false_positives(text: str) -> None:
    assert extract_name(text) is None


def test_bare_sentence_is_no_name() -> None:
    assert extract_name("I already told you", "name") is None


@pytest.mark.parametrize(
    ("text", "issue"),
    [
        ("I want my money back", "refund"),
        ("I'd like to return these shoes", "refund"),
        ("you charged me twice", "billing"),
        ("there is a mistake on my invoice", "billing"),
        ("where is my order", "order_status"),
        ("my package hasn't arrived", "order_status"),
        ("please cancel it", "cancel"),
        ("I can't log in to the app", "technical"),
        ("the lamp is broken", "technical"),
        ("我想退款", "refund"),
    ],
)
def test_issue_types(text: str, issue: str) -> None:
    assert fill(text)["issue_type"] == issue


def test_issue_other_only_when_asked() -> None:
    assert "issue_type" not in fill("hello there")
    assert fill("something else entirely", expecting="issue_type")["issue_type"] == "other"


@pytest.mark.parametrize(
    ("text", "urgency"),
    [
        ("this is urgent", "high"),
        ("I need it asap", "high"),
        ("please do it right away", "high"),
        ("it's an emergency", "high"),
        ("it's not urgent", "low"),
        ("no rush", "low"),
        ("whenever you can", "low"),
    ],
)
def test_urgency(text: str, urgency: str) -> None:
    assert fill(text)["urgency"] == urgency


def test_update_returns_only_new_or_changed() -> None:
    filler = SlotFiller()
    first = filler.update("this is urgent, my name is Maria Lopez", today=TODAY)
    assert first == {"urgency": "high", "name": "Maria Lopez"}
    assert filler.update("it's urgent!", today=TODAY) == {}
    assert filler.update("actually no rush", today=TODAY) == {"urgency": "low"}
    assert filler.filled == {"urgency": "low", "name": "Maria Lopez"}


def test_full_utterance() -> None:
    got = fill("Hi, this is Maria Lopez, I need a refund asap, call me at 555 123 4567 on Friday at 3 pm")
    assert got == {
        "phone": "5551234567",
        "date": "2026-11-27",
        "time": "15:00",
        "name": "Maria Lopez",
        "issue_type": "refund",
        "urgency": "high",
    }


def test_custom_order_length_and_copy() -> None:
    filler = SlotFiller(order_digits=(3, 4))
    assert filler.update("order number 457", today=TODAY) == {"order_number": "457"}
    assert filler.update("order number 45789", today=TODAY) == {}
    clone = copy.deepcopy(filler)
    clone.update("my name is Ann", today=TODAY)
    assert "name" not in filler.filled


def test_merge() -> None:
    assert merge({"a": "1", "b": "2"}, {"b": "3"}) == {"a": "1", "b": "3"}


def test_phone_number_given_over_two_turns() -> None:
    filler = SlotFiller()
    assert filler.update("Can you call me back tomorrow? My number is 555-123", today=TODAY) == {"date": "2026-11-23"}
    assert filler.pending_phone_digits == "555123"
    assert filler.update("4567.", today=TODAY) == {"phone": "5551234567"}
    assert filler.pending_phone_digits == ""


def test_a_quantity_in_a_question_is_not_an_order_number() -> None:
    filler = SlotFiller()
    assert filler.update("Is there a discount if I buy three of the same item?", expecting="order_number", today=TODAY) == {}
    assert filler.pending_order_digits == ""
    assert filler.update("three", expecting="order_number", today=TODAY) == {}
    assert filler.pending_order_digits == "3"  # a bare answer still starts one
