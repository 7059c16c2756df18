"""Deterministic slot extraction from ASR transcripts: the fast path an LLM only has to complete.

Numbers reach us as words ("four five seven"), digits ("4 5 7") or both; ``words_to_digits``
makes them one digit run first, then small regex extractors read the slots from that text.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

SLOT_NAMES = ("name", "order_number", "phone", "date", "issue_type", "urgency")
ISSUE_TYPES = ("order_status", "refund", "billing", "cancel", "technical", "other")
URGENCIES = ("low", "normal", "high")
DIGIT_SLOTS = frozenset({"order_number", "phone"})

_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine".split())} | {"oh": 0, "o": 0}
_TEENS = {
    w: 10 + i for i, w in enumerate("ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())
}
_TENS = {w: 20 + 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_ORD_UNITS = {w: i + 1 for i, w in enumerate("first second third fourth fifth sixth seventh eighth ninth".split())}
_REPEAT = {"double": 2, "triple": 3}
_CJK = dict(zip("零〇一幺二两三四五六七八九", "0011223456789", strict=True))
_SUFFIX = {1: "st", 2: "nd", 3: "rd"}

_TOKEN = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}|\d+(?:st|nd|rd|th)\b|\d+|[A-Za-z]+(?:'[A-Za-z]+)?|[零〇一幺二两三四五六七八九]|\s+|.", re.S
)
_SEPARATOR = re.compile(r"\s+|[,\-，、]")
_MONTH_NAMES = "january february march april may june july august september october november december".split()
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)} | {m[:3]: i + 1 for i, m in enumerate(_MONTH_NAMES)} | {"sept": 9}
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()


def _ordinal_suffix(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else _SUFFIX.get(n % 10, "th")


def _skip(tokens: list[str], i: int, pattern: re.Pattern[str]) -> int:
    while i < len(tokens) and pattern.fullmatch(tokens[i]):
        i += 1
    return i


_SPACE = re.compile(r"\s+|-")


def _read_item(tokens: list[str], i: int) -> tuple[str, int, str] | None:
    """The number item starting at ``tokens[i]``: (digits, next index, kind) or None."""
    if i >= len(tokens):
        return None
    tok, low = tokens[i], tokens[i].lower()
    if tok.isascii() and tok.isdigit():
        return tok, i + 1, "digits"
    if tok in _CJK:
        return _CJK[tok], i + 1, "cjk"
    if low in _UNITS:
        return str(_UNITS[low]), i + 1, "unit"
    if low in _TEENS:
        return str(_TEENS[low]), i + 1, "word"
    if low in _TENS:
        j = _skip(tokens, i + 1, _SPACE)
        nxt = tokens[j].lower() if j < len(tokens) else ""
        if nxt in _UNITS and _UNITS[nxt] > 0 and nxt != "o":
            return str(_TENS[low] + _UNITS[nxt]), j + 1, "word"
        if nxt in _ORD_UNITS:
            n = _TENS[low] + _ORD_UNITS[nxt]
            return f"{n}{_ordinal_suffix(n)}", j + 1, "ordinal"
        return str(_TENS[low]), i + 1, "word"
    if low in _REPEAT:
        j = _skip(tokens, i + 1, _SPACE)
        item = _read_item(tokens, j)
        if item and item[2] in ("unit", "digits") and len(item[0]) == 1:
            return item[0] * _REPEAT[low], item[1], "word"
    return None


def _previous_word(tokens: list[str], i: int) -> str:
    j = i - 1
    while j >= 0 and tokens[j].isspace():
        j -= 1
    return tokens[j].lower().rstrip(".") if j >= 0 else ""


def _scan_run(tokens: list[str], i: int, expected: bool) -> tuple[list[tuple[str, str]], int]:
    """Collect the number items of the run starting at ``i``: ([(digits, kind)], end index)."""
    items: list[tuple[str, str]] = []
    end = i
    j = i
    while (item := _read_item(tokens, j)) is not None:
        if not items and item[2] == "unit" and tokens[j].lower() in ("oh", "o") and not expected:
            return [], i
        items.append((item[0], item[2]))
        end = item[1]
        if item[2] == "ordinal":
            break
        if len(items) == 1 and _previous_word(tokens, i) in _MONTHS and len(item[0]) <= 2:
            break  # "November 23, 2026": the day stands alone
        j = end
        while j < len(tokens) and (
            _SEPARATOR.fullmatch(tokens[j]) or (tokens[j] == "." and j + 1 < len(tokens) and tokens[j + 1].isspace())
        ):
            j += 1
    return items, end


def _accept(items: list[tuple[str, str]], expected: bool) -> bool:
    if len(items) >= 2:
        return True
    digits, kind = items[0]
    if kind in ("word", "ordinal", "digits"):
        return True
    return expected and digits != "" and kind in ("unit", "cjk")


def words_to_digits(text: str, *, digits_expected: bool = False) -> str:
    """Turn spoken digit runs into digits: "four five seven" -> "457", "double oh seven" -> "007".

    A lone digit word ("the one I ordered") stays a word unless ``digits_expected`` (the agent
    has just asked for a number). Digit groups split by spaces, commas or hyphens are joined.
    """
    tokens = _TOKEN.findall(text)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        items, end = _scan_run(tokens, i, digits_expected)
        if items and _accept(items, digits_expected):
            out.append("".join(d for d, _ in items))
            i = end
        else:
            out.append(tokens[i])
            i += 1
    return "".join(out)


# ---- slot extractors ---------------------------------------------------------------------------

_RUN = re.compile(r"(?<![\w$.:/-])\d+(?![\w%:/-]|\.\d)")
_PHONE_CUE = re.compile(
    r"\b(?:call(?:ing)?\s+me(?:\s+back)?|call\s+back|callback|reach\s+me|text\s+me|my\s+(?:phone\s+|cell\s+|mobile\s+)?number"
    r"|phone|cell|mobile|telephone)\b|电话|手机"
)
_ORDER_CUE = re.compile(r"\border(?:\s*(number|num|no\.?|id|code|#))?|(订单号|单号|订单)")
_MON = r"(?P<m>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b\.?"
_ORD_WORDS = dict(_ORD_UNITS) | {"tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13}
_ORD_WORDS |= {w + "teenth": 10 + n for w, n in (("four", 4), ("fif", 5), ("six", 6), ("seven", 7), ("eigh", 8), ("nine", 9))}
_ORD_WORDS |= {"twentieth": 20, "thirtieth": 30}
_DAY = r"(?:(?P<d>\d{1,2})(?:st|nd|rd|th)?|(?P<dw>" + "|".join(_ORD_WORDS) + r"))"
_YEAR = r"(?:,?\s+(?P<y>\d{4})\b)?"
_DATE_PATTERNS = (
    re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b(?P<dw>)"),
    re.compile(r"\b" + _MON + r"\s+(?:the\s+)?" + _DAY + r"\b" + _YEAR),
    re.compile(r"\b(?:the\s+)?" + _DAY + r"\s+(?:of\s+)?" + _MON + _YEAR),
)
_THE_DAY = re.compile(r"\bthe\s+(?:(?P<d>\d{1,2})(?:st|nd|rd|th)|(?P<dw>" + "|".join(_ORD_WORDS) + r"))\b")
_WEEKDAY = re.compile(r"\b(" + "|".join(_WEEKDAYS) + r")s?\b")
_HOUR_WORDS = {w: n for w, n in _UNITS.items() if n > 0 and w != "o"} | {"ten": 10, "eleven": 11, "twelve": 12}
_H = r"(?P<h>\d{1,2}|" + "|".join(_HOUR_WORDS) + r")"
_MER = r"(?P<mer>[ap])\.?\s?m\b\.?"
_TIME_PATTERNS = (
    re.compile(r"\b" + _H + r"(?::?(?P<min>\d{2}))?\s*" + _MER),
    re.compile(r"\bat\s+" + _H + r"(?::?(?P<min>\d{2}))?(?:\s*o'?clock)?\b(?![:.]?\d)"),
)
_PART_OF_DAY = re.compile(r"\b(?:in the|this|tomorrow|today)\s+(morning|afternoon|evening)\b|\b(tonight)\b")
_NAME_STRONG = re.compile(r"\b(?:my name is|my name's|the name is|name's|name is)\s+(.+)", re.I)
_NAME_WEAK = re.compile(r"\b(?:this is|i am|i'm|call me)\s+(.+)", re.I)
_NAME_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_NAME_CJK = re.compile(r"(?:我叫|我的名字是|我的名字叫)\s*([\u4e00-\u9fff]{2,4})")
_NOT_NAME = frozenset(
    "a an the and but or so just not calling trying looking having still really very sorry afraid angry upset frustrated "
    "fine good great okay ok sure here there from with about going getting back at on in to for your you it that this what "
    "why how when who wondering interested hoping glad happy sad tired done waiting yes no well um uh actually also calling "
    "ridiculous terrible unacceptable urgent important worried confused annoyed disappointed calling phoning ringing told "
    "already now never please thanks thank hi hello hey again only pretty quite having having being sick fed".split()
)
_FILLER = re.compile(r"^(?:(?:yes|yeah|sure|ok|okay|um|uh|hi|hello|so|well|it's|it is|that's|that is|my name is),?\s+)+", re.I)
_ISSUES = (
    ("cancel", re.compile(r"\bcancel\w*|取消")),
    ("refund", re.compile(r"\brefund\w*|\breturn(?:ing|ed)?\b|money back|send (?:it|this|them) back|退款|退货")),
    ("billing", re.compile(r"\b(?:over|double |twice )?charg\w*|\bbill(?:ed|ing)?\b|invoice|payment|扣费|账单|发票")),
    (
        "technical",
        re.compile(
            r"broken|not working|doesn't work|won't work|\berror|can't log ?in|cannot log ?in|crash\w*|\bbug\b|password|坏了|故障|登录不了"
        ),
    ),
    (
        "order_status",
        re.compile(
            r"where(?: is|'s) my (?:order|package|parcel)|deliver\w*|\bpackage|\bparcel|\btrack\w*|ship\w*|hasn't arrived|包裹|快递|物流"
        ),
    ),
)
_URGENCY = (
    ("low", re.compile(r"not urgent|no rush|no hurry|whenever|take your time|not in a hurry|不急")),
    (
        "high",
        re.compile(
            r"urgent\w*|\basap\b|a\.s\.a\.p|as soon as possible|right away|right now|emergenc\w+|immediately|紧急|马上|尽快|立刻"
        ),
    ),
)


def _day_of(m: re.Match[str]) -> int:
    return int(m["d"]) if m["d"] else _ORD_WORDS[m["dw"]]


def _make_date(year: int | None, month: int, day: int, today: dt.date) -> dt.date | None:
    """The date, in the year given or else the next one on or after ``today``."""
    try:
        date = dt.date(year or today.year, month, day)
        if year is None and date < today:
            date = dt.date(today.year + 1, month, day)
    except ValueError:
        return None
    return date


def _next_day_of_month(day: int, today: dt.date) -> dt.date | None:
    for offset in range(0, 3):
        month, year = (today.month - 1 + offset) % 12 + 1, today.year + (today.month - 1 + offset) // 12
        try:
            date = dt.date(year, month, day)
        except ValueError:
            continue
        if date >= today:
            return date
    return None


def extract_date(low: str, today: dt.date, expecting: str | None = None) -> dt.date | None:
    """The first date in lower-cased, digit-normalised text; relative words count from ``today``."""
    for pattern in _DATE_PATTERNS:
        if m := pattern.search(low):
            month = int(m["m"]) if m["m"].isdigit() else _MONTHS[m["m"]]
            if date := _make_date(int(m["y"]) if m["y"] else None, month, _day_of(m), today):
                return date
    m = _THE_DAY.search(low)
    if m and (m["d"] or expecting == "date"):
        return _next_day_of_month(_day_of(m), today)
    if "day after tomorrow" in low:
        return today + dt.timedelta(days=2)
    if re.search(r"\btomorrow\b", low):
        return today + dt.timedelta(days=1)
    if re.search(r"\b(?:today|tonight)\b", low):
        return today
    if m := _WEEKDAY.search(low):
        ahead = (_WEEKDAYS.index(m[1]) - today.weekday() - 1) % 7 + 1
        return today + dt.timedelta(days=ahead)
    return None


def extract_time(low: str, raw: str | None = None) -> str | None:
    """The time as "15:00" for a clock time, else "morning" / "afternoon" / "evening", else None.

    ``low`` is lower-cased ``words_to_digits`` output; a colon-less "330" counts only when it was
    spoken as words, i.e. is not a digit run in ``raw`` (the original text) too. Without
    a.m./p.m. or a part of the day, hours 1-6 are read as afternoon (business hours).
    """
    part = _PART_OF_DAY.search(low)
    period = (part[1] or "evening") if part else None
    for pattern in _TIME_PATTERNS:
        if m := pattern.search(low):
            hour = int(m["h"]) if m["h"].isdigit() else _HOUR_WORDS[m["h"]]
            minute = int(m["min"] or 0)
            typed = raw is not None and m["min"] and ":" not in m[0] and re.search(rf"(?<!\d){m['h']}{m['min']}(?!\d)", raw)
            if hour > 23 or minute > 59 or typed:
                continue
            mer = m.groupdict().get("mer") or {"morning": "a", None: None}.get(period, "p")
            if mer == "p" and hour < 12:
                hour += 12
            elif mer == "a" and hour == 12:
                hour = 0
            elif mer is None and 1 <= hour <= 6:
                hour += 12
            return f"{hour:02d}:{minute:02d}"
    if re.search(r"\bnoon\b", low):
        return "12:00"
    return period


def _name_words(rest: str, strict: bool) -> str | None:
    """Up to three name words from the start of ``rest``; ``strict`` wants them capitalised."""
    words: list[str] = []
    for m in re.finditer(r"\S+", rest):
        word = m[0]
        core = _NAME_WORD.fullmatch(word.rstrip(".,!?;:"))
        if core is None or core[0].lower() in _NOT_NAME or (strict and not word[0].isupper()):
            break
        words.append(core[0])
        if len(words) == 3 or word[-1] in ".,!?;:":
            break
    if not words:
        return None
    return " ".join(w[0].upper() + w[1:] for w in words)


def extract_name(text: str, expecting: str | None = None) -> str | None:
    """A caller's name from "my name is ...", "this is ...", "I'm ..." (capitalised), or a bare name when asked."""
    if m := _NAME_CJK.search(text):
        return m[1]
    for pattern, strict in ((_NAME_STRONG, False), (_NAME_WEAK, expecting != "name")):
        for m in pattern.finditer(text):
            if name := _name_words(m[1], strict):
                return name
    if expecting == "name":
        bare = _FILLER.sub("", text.strip()).strip(" .,!?")
        if bare and len(bare.split()) <= 3:
            return _name_words(bare, strict=False)
    return None


def _first(patterns: tuple[tuple[str, re.Pattern[str]], ...], low: str) -> str | None:
    return next((label for label, pattern in patterns if pattern.search(low)), None)


def merge(slots: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    """A copy of ``slots`` with ``new`` applied over it."""
    return {**slots, **new}


@dataclass(slots=True)
class SlotFiller:
    """Per-call slot state filled from each caller utterance by :meth:`update`.

    An order number may arrive over several turns: a digit run too short to be one is kept in
    ``pending_order_digits``; the policy should then say "go on" and pass ``expecting="order_number"``.
    """

    order_digits: tuple[int, int] = (5, 12)
    phone_digits: tuple[int, int] = (7, 15)
    filled: dict[str, str] = field(default_factory=dict)
    pending_order_digits: str = ""
    pending_phone_digits: str = ""  # the start of a phone number the caller paused in
    _pending_age: int = field(default=0, repr=False)

    def update(self, text: str, expecting: str | None = None, today: dt.date | None = None) -> dict[str, str]:
        """Read one utterance; returns only the slots it newly filled or changed (also kept in ``filled``)."""
        today = today or dt.date.today()
        text = text.replace("\u2019", "'")
        cued = bool(_PHONE_CUE.search(text.lower()) or _ORDER_CUE.search(text.lower()))
        low = words_to_digits(text, digits_expected=cued or expecting in DIGIT_SLOTS).lower()
        found: dict[str, str] = {}
        runs = [(m.start(), m[0]) for m in _RUN.finditer(low)]
        if (number := self._phone_continued(low, runs)) is not None:
            found["phone"] = number
        elif (phone := self._phone(low, runs, expecting)) is not None:
            found["phone"] = phone[1]
            runs.remove(phone)
        if (order := self._order(low, runs, expecting)) is not None:
            found["order_number"] = order
        if (date := extract_date(low, today, expecting)) is not None:
            found["date"] = date.isoformat()
        if (time := extract_time(low, text)) is not None:
            found["time"] = time
        if (name := extract_name(text, expecting)) is not None:
            found["name"] = name
        issue = _first(_ISSUES, low) or ("other" if expecting == "issue_type" else None)
        if issue is not None:
            found["issue_type"] = issue
        if (urgency := _first(_URGENCY, low)) is not None:
            found["urgency"] = urgency
        changed = {k: v for k, v in found.items() if self.filled.get(k) != v}
        self.filled.update(changed)
        return changed

    def _phone_continued(self, low: str, runs: list[tuple[int, str]]) -> str | None:
        """Digits right after a phone number that stopped short: join them (consumes the run)."""
        pending, self.pending_phone_digits = self.pending_phone_digits, ""
        if not pending or not runs or _PHONE_CUE.search(low):
            return None
        joined = pending + runs.pop(0)[1]
        lo, hi = self.phone_digits
        if len(joined) < lo:
            self.pending_phone_digits = joined
            return None
        return joined if len(joined) <= hi else None

    def _phone(self, low: str, runs: list[tuple[int, str]], expecting: str | None) -> tuple[int, str] | None:
        lo, hi = self.phone_digits
        cue = _PHONE_CUE.search(low)
        if cue is None and expecting != "phone":
            return None
        start = cue.start() if cue else 0
        after = [r for r in runs if r[0] >= start]
        whole = next((r for r in after if lo <= len(r[1]) <= hi), None)
        if whole is None and after and 3 <= len(after[-1][1]) < lo:
            self.pending_phone_digits = after[-1][1]  # the caller paused mid-number
            runs.remove(after[-1])
        return whole

    def _order(self, low: str, runs: list[tuple[int, str]], expecting: str | None) -> str | None:
        cue = _ORDER_CUE.search(low)
        explicit = bool(cue and (cue[1] or cue[2]))
        continuing = bool(self.pending_order_digits) and (expecting == "order_number" or self._pending_age == 0)
        run: tuple[int, str] | None = None
        if cue is not None:
            run = next((r for r in runs if 0 <= r[0] - cue.end() <= 30), None)
        if run is None and (expecting == "order_number" or continuing) and runs:
            # no cue: digits count when they are the answer, not a quantity inside a question
            if len(runs[0][1]) >= 3 or len(low.split()) <= 5:
                run = runs[0]
        if run is None:
            self._pending_age += 1
            if expecting != "order_number":
                self.pending_order_digits = ""
            return None
        digits = run[1]
        if continuing and not explicit:
            digits = self.pending_order_digits + digits
        lo, hi = self.order_digits
        self.pending_order_digits, self._pending_age = "", 0
        if len(digits) > hi and continuing:
            digits = run[1]
        if lo <= len(digits) <= hi:
            return digits
        if len(digits) < lo and (explicit or expecting == "order_number" or continuing):
            self.pending_order_digits = digits
        return None
