"""The template language of the first corpus: digit strings, spelled-out numbers, times, dates and money,
smart-home commands and sentences over a few hundred words (`generate_text`). Small enough for a CPU-sized model
to learn, and so a measure of voices rather than words; `open_text.py` is the open-vocabulary source.
"""

import random
import re

from processing.text_normalization_mel_llm import cardinal, ordinal, year


MAX_WORDS = 12

_WORD_LISTS = {  # a few hundred words in all: small enough for a CPU-sized model to learn
    "ones": "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    " seventeen eighteen nineteen",
    "tens": "_ _ twenty thirty forty fifty sixty seventy eighty ninety",
    "ordinals": "_ first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth"
    " fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth",
    "months": "january february march april may june july august september october november december",
    "noun": "cat dog bird fish horse cow sheep rabbit mouse fox bear lion tiger monkey frog duck goat owl snake book"
    " pen cup box bag hat coat shoe key lamp chair table door clock phone ball kite boat train car bus bike plane"
    " apple bread cake egg cheese milk tea soup orange banana lemon flower tree river mountain letter picture song"
    " ticket map umbrella pencil basket bottle",
    "adj": "big small old new happy sad quick slow tall short hot cold warm soft loud quiet heavy clean dirty little"
    " young bright dark sweet empty full lucky funny busy strange",
    "colour": "red blue green yellow black white brown pink purple grey silver golden",
    "vt": "saw found took made painted washed bought sold carried pushed pulled opened dropped kicked caught chased"
    " followed watched liked wanted needed moved lifted hid built cleaned fixed",
    "vi": "ran jumped slept sat stood walked danced sang swam laughed smiled waited fell cried played worked",
    "place": "kitchen bedroom garden park school office station market library beach forest city village garage"
    " hallway bathroom",
    "name": "anna ben clara david emma frank grace henry james kate lucy mark nina oscar paul sarah tom zoe",
    "when": "today yesterday tomorrow tonight now later again",
    "room": "kitchen bedroom bathroom hallway garage office garden",
    "device": "lights heater fan radio television oven kettle",
    "onoff": "on off",
    "updown": "up down",
    "glue": "an hundred thousand oh quarter past half to thirtieth of dollars and cents",  # numbers, times, money
}
WORDS = {slot: text.split() for slot, text in _WORD_LISTS.items()}
ONES, TENS, ORDINALS, MONTHS, GLUE = (WORDS.pop(key) for key in ("ones", "tens", "ordinals", "months", "glue"))
SENTENCES = """
the {adj} {noun} {vi}
the {colour} {noun} {vi} in the {place}
{name} {vt} the {adj} {noun}
{name} {vt} a {colour} {noun} {when}
the {noun} is {adj}
the {noun} was {colour}
{name} and {name} {vi} in the {place} {when}
my {noun} is in the {place}
did you see the {adj} {noun}
please give me the {colour} {noun}
{count} {colour} {nouns}
there are {count} {adj} {nouns} here
the {adj} {noun} {vt} the {colour} {noun} in the {place}
{name} {vi}
{noun}
{adj} {nouns}
we {vt} {count} {nouns} at the {place} {when}
where is the {adj} {noun}
i like {colour} {nouns}
""".strip().splitlines()  # one template per line
COMMANDS = """
turn the {device} {onoff}
turn the {device} {onoff} in the {room}
turn {updown} the volume
set a timer for {count} minutes
set an alarm for {clock}
play some music in the {room}
call {name}
send a message to {name}
open the {room} door
lock the front door
what is the weather {when}
what time is it
stop
pause
next song
go back
remind me to buy {nouns} {when}
add {nouns} to the shopping list
dim the lights in the {room}
switch {onoff} the {device}
""".strip().splitlines()  # one template per line
MASS_NOUNS = {"bread", "cheese", "milk", "tea", "soup"}  # never pluralised


def clock_time(rng: random.Random) -> str:
    hour, minute = rng.randint(1, 12), rng.choice([0, 5, 10, 15, 20, 30, 40, 45, rng.randint(1, 59)])
    if rng.random() < 0.3:
        return rng.choice(["quarter past", "half past", "quarter to"]) + f" {ONES[hour]}"
    return ONES[hour] + ("" if minute == 0 else (" oh " if minute < 10 else " ") + cardinal(minute))


def _fill(template: str, rng: random.Random) -> str:
    def slot(match: re.Match) -> str:
        name = match.group(1)
        if name == "nouns":
            return plural(rng.choice([n for n in WORDS["noun"] if n not in MASS_NOUNS]))
        if name == "count":
            return cardinal(rng.randint(2, 20))
        if name == "clock":
            return clock_time(rng)
        return rng.choice(WORDS[name])

    words = re.sub(r"\{(\w+)\}", slot, template).split()
    return " ".join(
        "an" if w == "a" and nxt[0] in "aeiou" else w for w, nxt in zip(words, [*words[1:], "x"], strict=True)
    )


def plural(noun: str) -> str:
    irregular = {"mouse": "mice", "sheep": "sheep", "fish": "fish"}
    if noun in irregular:
        return irregular[noun]
    return noun + ("es" if noun.endswith(("s", "x", "sh", "ch")) else "s")


def generate_text(rng: random.Random) -> tuple[str, str]:
    """One utterance `(kind, text)`: kind is "digits", "number", "command" or "sentence"; 1-12 words."""
    while True:
        kind = rng.choices(["digits", "number", "command", "sentence"], weights=[25, 20, 25, 30])[0]
        if kind == "digits":
            text = " ".join(ONES[rng.randint(0, 9)] for _ in range(rng.randint(1, 10)))
        elif kind == "number":
            form = rng.randrange(5)
            month = rng.choice(MONTHS)
            text = [
                cardinal(rng.choice([rng.randint(0, 99), rng.randint(100, 999), rng.randint(1000, 9999)])),
                clock_time(rng),
                rng.choice(
                    [f"{month} {ordinal(rng.randint(1, 31))}", f"the {ordinal(rng.randint(1, 31))} of {month}"]
                ),
                f"{month} {year(rng.randint(1900, 2099))}" if rng.random() < 0.5 else year(rng.randint(1900, 2099)),
                f"{cardinal(rng.randint(2, 999))} dollars"
                + (f" and {cardinal(rng.randint(2, 99))} cents" if rng.random() < 0.4 else ""),
            ][form]
        else:
            text = _fill(rng.choice(COMMANDS if kind == "command" else SENTENCES), rng)
        if 1 <= len(text.split()) <= MAX_WORDS:
            return kind, text


def vocabulary() -> list[str]:
    """Every word the generator can emit (e.g. to train a tokenizer on)."""
    words = {w for values in WORDS.values() for w in values} | {*ONES, *TENS[2:], *ORDINALS[1:], *MONTHS, *GLUE}
    words |= {plural(n) for n in WORDS["noun"] if n not in MASS_NOUNS}
    for template in SENTENCES + COMMANDS:
        words |= set(re.sub(r"\{\w+\}", " ", template).split())
    return sorted(words)
