"""Make LLM text speakable: no markdown, numbers as words, short replies, streamable token by token.

Three stages, each usable alone and each chunk-invariant (feeding text in any pieces gives the
same output as feeding it whole), so :class:`StreamSanitizer` equals :func:`for_speech`:
markdown -> plain sentences, numbers -> words, caps on sentences and characters.

Number policy: 4+ digit runs without a thousands comma are identifiers (order numbers, phone
numbers) and are read digit by digit; a 4-digit 1900-2099 after "in", "since", "by", "of",
"year", "until", "from" or a month (with or without a day) is read as a year ("twenty
twenty-six"); "1,250" is a cardinal; "3 pm" -> "three P M".
"""

from __future__ import annotations

import re

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORD_IRREGULAR = dict(
    zip("one two three five eight nine twelve".split(), "first second third fifth eighth ninth twelfth".split(), strict=True)
)
_MONTHS = "January February March April May June July August September October November December".split()
_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
}


def number_to_words(n: int) -> str:
    """English cardinal without "and": 1250 -> "one thousand two hundred fifty"."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[unit]}" if unit else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_to_words(rest)}" if rest else "")
    value, name = next((v, s) for v, s in _SCALES if n >= v)
    head, rest = divmod(n, value)
    return f"{number_to_words(head)} {name}" + (f" {number_to_words(rest)}" if rest else "")


def ordinal_words(n: int) -> str:
    """23 -> "twenty-third"."""
    words = number_to_words(n)
    m = re.fullmatch(r"(.*?)([a-z]+)", words)
    assert m is not None
    head, last = m[1], m[2]
    if last in _ORD_IRREGULAR:
        return head + _ORD_IRREGULAR[last]
    return head + (last[:-1] + "ieth" if last.endswith("y") else last + "th")


def spell_digits(digits: str) -> str:
    """ "4578" -> "four five seven eight"; non-digits are ignored."""
    return " ".join(_ONES[int(c)] for c in digits if c.isdigit())


def year_words(year: int) -> str:
    """2026 -> "twenty twenty-six", 2005 -> "two thousand five", 1905 -> "nineteen oh five"."""
    head, rest = divmod(year, 100)
    if 2000 <= year <= 2009:
        return "two thousand" + (f" {_ONES[rest]}" if rest else "")
    if rest == 0:
        return f"{number_to_words(head)} hundred"
    return f"{number_to_words(head)} " + (f"oh {_ONES[rest]}" if rest < 10 else number_to_words(rest))


# ---- numbers ------------------------------------------------------------------------------------

_MONTH_RE = r"(?:" + "|".join(m.lower() for m in _MONTHS) + r"|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\b\.?"
_MER = r"(?:\s?(?P<{0}>[AaPp])\.?[Mm](?!\w))"
_NUM = re.compile(
    r"(?P<date>(?<![\w.])\d{4}-\d{2}-\d{2}(?![\w-]))"
    r"|(?P<money>(?P<cur>[$€£])(?P<amt>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<cents>\d{1,2}))?(?!\d))"
    r"|(?P<phone>(?<![\w.])(?:\+\d{1,3}[ -])?(?:\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}(?!\d))"
    r"|(?P<time>(?<![\w.:])(?P<h>\d{1,2}):(?P<m>\d{2})" + _MER.format("mer1") + r"?(?![\d:]))"
    r"|(?P<hour>(?<![\w.:])(?P<h2>\d{1,2})" + _MER.format("mer2") + r")"
    r"|(?P<ord>(?<![\w.])(?P<on>\d+)(?:st|nd|rd|th)\b)"
    r"|(?P<pct>(?<![\w.])(?P<pn>\d+(?:\.\d+)?)\s?%)"
    r"|(?P<group>(?<![\w.])\d+(?:-\d+)+(?![\w-]))"
    r"|(?P<dec>(?<![\w.])(?P<di>\d+)\.(?P<df>\d+)(?![\d.]))"
    r"|(?P<comma>(?<![\w.,])\d{1,3}(?:,\d{3})+(?!\d))"
    r"|(?P<hash>#(?P<hn>\d+))"
    r"|(?P<alnum>(?<=[^\W\d])\d+)"
    r"|(?P<int>\d+)"
)
_YEAR_CONTEXT = re.compile(
    r"(?:\b(?:in|since|by|of|year|until|from)|\b" + _MONTH_RE + r"(?:\s+\d{1,2}(?:st|nd|rd|th)?,?)?)\s+$",
    re.I,
)
_ID_CONTEXT = re.compile(
    r"(?:\b(?:order|number|id|code|account|reference|ref|ticket|extension|ext|pin)(?:\s+(?:is|was))?:?|\d)\s+$", re.I
)
_AFTER_MONTH = re.compile(r"\b" + _MONTH_RE + r"\s+$", re.I)


def _amount(m: re.Match[str]) -> str:
    one, many, sub_one, sub_many = _CURRENCY[m["cur"]]
    whole = int(m["amt"].replace(",", ""))
    cents = int(m["cents"].ljust(2, "0")) if m["cents"] else 0
    parts = [f"{number_to_words(whole)} {one if whole == 1 else many}"] if whole or not cents else []
    if cents:
        parts.append(f"{number_to_words(cents)} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _clock(h: str, m: str | None, mer: str | None) -> str:
    words = number_to_words(int(h))
    if m and m != "00":
        words += f" oh {_ONES[int(m[1])]}" if m[0] == "0" else f" {number_to_words(int(m))}"
    elif mer is None:
        words += " o'clock"
    return words + (f" {mer.upper()} M" if mer else "")


def _integer(digits: str, before: str) -> str:
    if len(digits) <= 2 and 1 <= int(digits) <= 31 and _AFTER_MONTH.search(before[-12:]):
        return ordinal_words(int(digits))
    if len(digits) == 4 and 1900 <= int(digits) <= 2099 and _YEAR_CONTEXT.search(before[-40:]):
        return year_words(int(digits))
    if len(digits) >= 4 or (len(digits) > 1 and digits[0] == "0") or _ID_CONTEXT.search(before[-24:]):
        return spell_digits(digits)
    return number_to_words(int(digits))


def _iso_date(text: str) -> str:
    year, month, day = (int(p) for p in text.split("-"))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return spell_digits(text)
    return f"{_MONTHS[month - 1]} {ordinal_words(day)}, {year_words(year)}"


def _number(m: re.Match[str], before: str) -> str:
    kind, text = m.lastgroup, m[0]
    if kind == "date":
        return _iso_date(text)
    if kind == "money":
        return _amount(m)
    if kind == "phone":
        return ("plus " if text.startswith("+") else "") + ", ".join(spell_digits(g) for g in re.findall(r"\d+", text))
    if kind == "time":
        return _clock(m["h"], m["m"], m["mer1"])
    if kind == "hour":
        return _clock(m["h2"], None, m["mer2"])
    if kind == "ord":
        return ordinal_words(int(m["on"]))
    if kind == "pct":
        whole, _, frac = m["pn"].partition(".")
        return number_to_words(int(whole)) + (f" point {spell_digits(frac)}" if frac else "") + " percent"
    if kind == "group":
        groups = text.split("-")
        if sum(map(len, groups)) >= 5:
            return ", ".join(spell_digits(g) for g in groups)
        return " to ".join(_integer(g, "") for g in groups)
    if kind == "dec":
        return f"{number_to_words(int(m['di']))} point {spell_digits(m['df'])}"
    if kind == "comma":
        return number_to_words(int(text.replace(",", "")))
    if kind == "hash":
        return "number " + spell_digits(m["hn"])
    if kind == "alnum":
        return " " + spell_digits(text)
    return _integer(text, before)


def _spell(text: str, left: str = "") -> str:
    """Numbers in ``text`` as words; ``left`` is the raw text just before it (for year context)."""

    def sub(m: re.Match[str]) -> str:
        words = _number(m, left + text[: m.start()])
        after = text[m.end() : m.end() + 1]
        return words + " " if after.isalpha() else words

    return _NUM.sub(sub, text)


class _NumberSpeller:
    """Incremental :func:`spell_numbers`: releases text up to a space after a digit-free word."""

    def __init__(self) -> None:
        self._buf = ""
        self._left = ""

    def feed(self, text: str) -> str:
        self._buf += text
        cut = 0
        for m in re.finditer(r"(\S+)\s+", self._buf):
            if not any(c.isdigit() for c in m[1]):
                cut = m.end()
        return self._release(cut)

    def finish(self) -> str:
        return self._release(len(self._buf))

    def _release(self, cut: int) -> str:
        if cut == 0:
            return ""
        segment, self._buf = self._buf[:cut], self._buf[cut:]
        out = _spell(segment, self._left)
        self._left = (self._left + segment)[-48:]
        return out


def spell_numbers(text: str) -> str:
    """Digits as speakable words: identifiers digit by digit, amounts, times, ordinals, years."""
    return _spell(text)


# ---- markdown -----------------------------------------------------------------------------------

_CODE = re.compile(r"`+([^`]+?)`+")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)\s]*\)")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>()\[\]]+?(?=[.,;:!?)\]]*(?:\s|$))")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_ITALIC = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])|(?<!\w)_(?=[^\s_])(.+?)(?<=[^\s_])_(?!\w)")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d\u20e3\U000e0020-\U000e007f]")
_UNSAFE = re.compile(r"[*`\[\]]|~~|(?<!\w)_|_(?!\w)")
_BLOCK = frozenset({"list", "heading", "table", "code"})
_WHOLE_LINE = frozenset({"heading", "table", "fence", "code", "hr"})
_TABLE_RULE = re.compile(r"\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*")


def _inline(text: str) -> str:
    text = _CODE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub("the link", text)
    text = _BOLD.sub(lambda m: m[1] or m[2], text)
    text = _STRIKE.sub(r"\1", text)
    text = _ITALIC.sub(lambda m: m[1] or m[2], text)
    return _EMOJI.sub("", text)


def _inline_cut(text: str) -> int:
    """A position after whitespace before which every inline marker is closed (0: none yet).

    Any such position gives the same output, so only the last few are tried (bounded cost per push).
    """
    for m in reversed(list(re.finditer(r"\s+", text))[-4:]):
        if m.start() > 0 and not _UNSAFE.search(_inline(text[: m.end()])):
            return m.end()
    return 0


def _classify(line: str, complete: bool, fence: bool) -> tuple[str, int] | None:
    """(kind, length of the line marker) once the line start decides it, else None."""
    stripped = line.strip()
    if fence or stripped.startswith(("```", "~~~")):
        kind = "fence" if stripped.startswith(("```", "~~~")) else "code"
        return (kind, 0) if complete else None
    if not stripped:
        return ("blank", 0) if complete else None
    if set(stripped) <= set("-*_ \t"):
        if not complete:
            return None
        if re.fullmatch(r"([-*_])(?:\s*\1){2,}", stripped):
            return "hr", 0
    m = re.match(r"\s*(\S+)(\s+|$)", line)
    if m is None or (not m[2] and not complete):
        return None
    token = m[1]
    if stripped.startswith("|"):
        kind, end = "table", 0
    elif re.fullmatch(r"#{1,6}", token):
        kind, end = "heading", m.end()
    elif token in ("-", "*", "+", "•") or re.fullmatch(r"\d{1,3}[.)]", token):
        kind, end = "list", m.end()
    elif re.fullmatch(r">+", token):
        kind, end = "plain", m.end()
    else:
        kind, end = "plain", m.start(1)
    return None if kind in _WHOLE_LINE and not complete else (kind, end)


class _Spaces:
    """Collapses whitespace, drops it at the start and end, and adds sentence periods on request."""

    def __init__(self) -> None:
        self.last = ""
        self._pending = False

    def emit(self, text: str) -> str:
        out: list[str] = []
        for ch in text:
            if ch.isspace():
                self._pending = bool(self.last)
            else:
                if self._pending:
                    out.append(" ")
                    self._pending = False
                out.append(ch)
                self.last = ch
        return "".join(out)

    def space(self) -> None:
        self._pending = bool(self.last)

    def period(self) -> str:
        if not self.last or self.last in ".!?:;":
            return ""
        self.last = "."
        return "."


class _MarkdownStripper:
    """Incremental :func:`strip_markdown`, line by line; plain and list lines stream word by word."""

    def __init__(self) -> None:
        self._buf = ""  # the current line from where processing stopped (after its marker)
        self._kind: str | None = None  # the current line's kind once its start is known
        self._prev: str | None = None  # the kind of the last line with content
        self._blank = False  # a paragraph break since that line
        self._fence = False
        self._spaces = _Spaces()

    def feed(self, text: str) -> str:
        self._buf += text.replace("\r", "")
        return self._drain(final=False)

    def finish(self) -> str:
        out = self._drain(final=True)
        return out + (self._spaces.period() if self._prev in _BLOCK else "")

    def _drain(self, final: bool) -> str:
        out: list[str] = []
        while True:
            nl = self._buf.find("\n")
            complete = nl >= 0 or final
            line = self._buf[:nl] if nl >= 0 else self._buf
            if self._kind is None:
                decided = _classify(line, complete, self._fence)
                if decided is None:
                    return "".join(out)
                out.append(self._start(*decided))
                line, nl = line[decided[1] :], nl - decided[1] if nl >= 0 else nl
                self._buf = self._buf[decided[1] :]
            if not complete:
                cut = _inline_cut(line) if self._kind not in _WHOLE_LINE else 0
                out.append(self._spaces.emit(_inline(line[:cut])))
                self._buf = line[cut:]
                return "".join(out)
            out.append(self._spaces.emit(self._line_text(line)))
            if self._kind in _BLOCK or self._kind == "plain":
                self._prev = self._kind
            self._kind = None
            self._buf = self._buf[nl + 1 :] if nl >= 0 else ""
            if nl < 0:
                return "".join(out)

    def _start(self, kind: str, _marker: int) -> str:
        """Enter a line of ``kind``; returns the separator owed to the previous line."""
        self._kind = kind
        if kind == "fence":
            self._fence = not self._fence
        if kind in ("blank", "fence", "hr") or (kind == "table" and self._is_rule()):
            self._blank = self._prev is not None
            return ""
        sep = ""
        if self._prev is not None:
            if self._blank or self._prev in _BLOCK or kind in _BLOCK:
                sep = self._spaces.period()
            self._spaces.space()
        self._blank = False
        return sep

    def _is_rule(self) -> bool:
        nl = self._buf.find("\n")
        return bool(_TABLE_RULE.fullmatch(self._buf[:nl] if nl >= 0 else self._buf))

    def _line_text(self, line: str) -> str:
        if self._kind in ("blank", "fence", "hr"):
            return ""
        if self._kind == "code":
            return _EMOJI.sub("", line)
        if self._kind == "heading":
            return _inline(re.sub(r"\s+#+\s*$", "", line))
        if self._kind == "table":
            if _TABLE_RULE.fullmatch(line):
                return ""
            return _inline(", ".join(c.strip() for c in line.strip().strip("|").split("|") if c.strip()))
        return _inline(line)


def strip_markdown(text: str) -> str:
    """Markdown as plain spoken sentences: no emphasis, code marks, headings, list markers, tables, URLs, emoji."""
    stripper = _MarkdownStripper()
    return stripper.feed(text) + stripper.finish()


# ---- caps ---------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)|[。！？]+")
_TRAIL = " \t\n,;:-–—"


def _cut(sentence: str, max_chars: int) -> str:
    """``sentence`` cut at the last word boundary that leaves room for a final period."""
    bound = max((i for i in range(1, min(len(sentence), max_chars)) if sentence[i].isspace()), default=0)
    head = (sentence[:bound] if bound else sentence[: max_chars - 1]).rstrip(_TRAIL)
    return head if head.endswith((".", "!", "?")) else head + "."


class _Capper:
    """Incremental :func:`cap_reply`: the first sentence streams word by word, later ones whole."""

    def __init__(self, max_sentences: int, max_chars: int) -> None:
        self.max_sentences = max_sentences
        self.max_chars = max_chars
        self.truncated = False
        self._buf = ""  # the undecided sentence, with the whitespace before it
        self._emitted = 0  # characters of the first sentence already released
        self._count = 0  # sentences released
        self._length = 0  # characters released
        self._done = False

    def feed(self, text: str, final: bool = False) -> str:
        if self._done:
            self.truncated = self.truncated or bool(text.strip())
            return ""
        self._buf += text
        out: list[str] = []
        while not self._done:
            if self._count == 0:
                self._buf = self._buf.lstrip()
            m = _SENTENCE_END.search(self._buf)
            end = m.end() if m else (len(self._buf.rstrip()) if final and self._buf.strip() else 0)
            if not end:
                out.append(self._partial())
                break
            sentence, self._buf = self._buf[:end].strip(), self._buf[end:]
            out.append(self._sentence(sentence))
        if self._done and self._buf.strip():
            self.truncated = True
        return "".join(out)

    def finish(self) -> str:
        return self.feed("", final=True)

    def _sentence(self, sentence: str) -> str:
        if self._count == 0:
            text = sentence if len(sentence) <= self.max_chars else _cut(sentence, self.max_chars)
            self.truncated = text != sentence
            return self._release(text[self._emitted :], done=self.truncated)
        if self._count < self.max_sentences and self._length + 1 + len(sentence) <= self.max_chars:
            return self._release(" " + sentence)
        self._done = self.truncated = True
        return ""

    def _partial(self) -> str:
        """Release what is certain of an unfinished sentence; stop once it cannot fit."""
        text = self._buf.lstrip()
        if self._count > 0:
            if self._length + 1 + len(text.rstrip()) > self.max_chars:
                self._done = self.truncated = True
            return ""
        if len(text.rstrip()) > self.max_chars:
            self.truncated = True
            return self._release(_cut(text, self.max_chars)[self._emitted :], done=True)
        bound = max((i for i, c in enumerate(text[: self.max_chars]) if c.isspace()), default=0)
        safe = text[:bound].rstrip(_TRAIL)
        if len(safe) <= self._emitted:
            return ""
        piece, self._emitted = safe[self._emitted :], len(safe)
        self._length = len(safe)
        return piece

    def _release(self, piece: str, done: bool = False) -> str:
        self._count += 1
        self._length += len(piece)
        self._emitted = 0
        self._done = done or self._count >= self.max_sentences
        return piece


def cap_reply(text: str, max_sentences: int = 3, max_chars: int = 320) -> str:
    """Whole sentences up to both caps; at least the first, cut at a word boundary with a period."""
    capper = _Capper(max_sentences, max_chars)
    return capper.feed(text) + capper.finish()


def for_speech(text: str, max_sentences: int = 3, max_chars: int = 320) -> str:
    """``strip_markdown`` -> ``spell_numbers`` -> ``cap_reply``: LLM text ready for TTS."""
    return cap_reply(spell_numbers(strip_markdown(text)), max_sentences, max_chars)


class StreamSanitizer:
    """:func:`for_speech` for streamed LLM tokens: ``push`` each piece, ``flush`` at the end.

    Whatever ``push`` returns may be sent to TTS at once; partial words, numbers and markdown
    are held back. Once ``truncated`` is True the caps are reached: stop generating; ``push``
    and ``flush`` then return "". A sentence is released once the word after it starts. The concatenation of all outputs equals
    ``for_speech`` of the concatenated input.
    """

    def __init__(self, max_sentences: int = 3, max_chars: int = 320) -> None:
        self._markdown = _MarkdownStripper()
        self._numbers = _NumberSpeller()
        self._capper = _Capper(max_sentences, max_chars)

    @property
    def truncated(self) -> bool:
        return self._capper.truncated

    def push(self, piece: str) -> str:
        """Text safe to speak now ("" while holding back, and always once ``truncated``)."""
        if self._capper.truncated:
            return ""
        return self._capper.feed(self._numbers.feed(self._markdown.feed(piece)))

    def flush(self) -> str:
        """The rest, at the end of the stream."""
        spelled = self._numbers.feed(self._markdown.finish()) + self._numbers.finish()
        return self._capper.feed(spelled) + self._capper.finish()
