"""Text as people type it → the words a TTS model speaks: numbers, money, times, symbols and abbreviations spelled
out, then lower case without punctuation (the form the training transcripts have). The next file on the TTS path
is processing_mel_llm.py (`MelLLMProcessor.tts_inputs` calls `normalize_tts_text`).

Idempotent on text that is already normal, so training transcripts pass through unchanged.
"""

import re
import unicodedata


_ONES_TEXT = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"
    " eighteen nineteen"
)
_TENS_TEXT = "_ _ twenty thirty forty fifty sixty seventy eighty ninety"
_ONES, _TENS = _ONES_TEXT.split(), _TENS_TEXT.split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_ENDINGS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth"}
_ORDINAL_ENDINGS |= {"nine": "ninth", "twelve": "twelfth"}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "=": " equals ", "@": " at ", "#": " number "}
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "ms": "miz", "dr": "doctor", "vs": "versus", "etc": "et cetera"}
_ABBREVIATIONS |= {"e.g": "for example", "i.e": "that is"}
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence")}
_CURRENCIES |= {"€": ("euro", "euros", "cent", "cents")}
_MAX_NUMBER = 10**12


def cardinal(n: int) -> str:
    """0 ≤ n < 10¹² in words, US style without "and": 4012 → "four thousand twelve"."""
    if not 0 <= n < _MAX_NUMBER:
        raise ValueError(f"{n} is outside the numbers spelled out (0 to {_MAX_NUMBER - 1}).")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    size, name = next((size, name) for size, name in _SCALES if n >= size)
    high, rest = divmod(n, size)
    return f"{cardinal(high)} {name}" + ("" if rest == 0 else " " + cardinal(rest))


def ordinal(n: int) -> str:
    """1 → "first", 23 → "twenty third", 100 → "one hundredth"."""
    words = cardinal(n).split()
    last = words[-1]
    if last in _ORDINAL_ENDINGS:
        words[-1] = _ORDINAL_ENDINGS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year(n: int) -> str:
    """1100-2099 as spoken: "nineteen oh five", "two thousand seven", "twenty twenty five"."""
    high, low = divmod(n, 100)
    if 2000 <= n < 2010:
        return "two thousand" + ("" if low == 0 else " " + _ONES[low])
    return cardinal(high) + (" hundred" if low == 0 else (" oh " if low < 10 else " ") + cardinal(low))


def _number(text: str) -> str:
    """A plain number, with thousands commas or a decimal point: "1,250" → "one thousand two hundred fifty"."""
    whole, _, fraction = text.replace(",", "").partition(".")
    if len(whole) > 12:  # too long to read as a number: say the digits
        return " ".join(_ONES[int(d)] for d in whole)
    spoken = cardinal(int(whole or "0"))
    return spoken + (" point " + " ".join(_ONES[int(d)] for d in fraction) if fraction else "")


def _money(match: re.Match) -> str:
    one, many, cent, cents = _CURRENCIES[match["symbol"]]
    whole, fraction = int(match["whole"].replace(",", "")), match["fraction"]
    spoken = f"{cardinal(whole)} {one if whole == 1 else many}"
    if fraction and int(fraction):
        small = int(fraction.ljust(2, "0")[:2])
        spoken += f" and {cardinal(small)} {cent if small == 1 else cents}"
    return f" {spoken} "


def _clock(match: re.Match) -> str:
    hour, minute = int(match["hour"]), int(match["minute"])
    spoken = cardinal(hour) + ("" if minute == 0 else (" oh " if minute < 10 else " ") + cardinal(minute))
    return f" {spoken}" + (f" {' '.join(match['half'].lower().replace('.', ''))} " if match["half"] else " ")


def _plain_number(match: re.Match) -> str:
    text = match.group(0)
    if re.fullmatch(r"1[1-9]\d\d|20\d\d", text):  # four digits that look like a year are read as one
        return f" {year(int(text))} "
    return f" {_number(text)} "


def normalize_tts_text(text: str) -> str:
    """
    Spell out what a TTS model cannot read as words and return lower-case words and apostrophes only:
    "Dr. Smith paid $3.50 at 10:05 PM on the 2nd of May, 1999 (50% off!)" →
    "doctor smith paid three dollars and fifty cents at ten oh five p m on the second of may nineteen ninety nine
    fifty percent off".
    """
    text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
    text = re.sub(r"(?<=\d)\s*(?=%)", "", text)
    text = re.sub(r"(?P<symbol>[$£€])\s?(?P<whole>\d[\d,]*)(?:\.(?P<fraction>\d+))?", _money, text)
    text = re.sub(r"\b(?P<hour>\d{1,2}):(?P<minute>\d{2})\s*(?P<half>[ap]\.?m\.?)?(?![\w])", _clock, text, flags=re.I)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: f" {ordinal(int(m[1]))} ", text, flags=re.I)
    text = re.sub(r"\d[\d,]*(?:\.\d+)?", _plain_number, text)
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    words = re.sub(r"[^a-z'.]+", " ", text.lower()).split()
    spoken_words = []
    for word in words:
        bare = word.strip(".'")
        spoken_words.append(_ABBREVIATIONS.get(bare, bare) if word.endswith(".") else bare)
    return " ".join(" ".join(spoken_words).replace(".", " ").split())


__all__ = ["cardinal", "normalize_tts_text", "ordinal", "year"]
