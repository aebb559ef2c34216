"""TTS input as people type it: numbers, money, times, symbols and abbreviations become the words a model speaks."""

import pytest

from processing.text_normalization_mel_llm import cardinal, normalize_tts_text, ordinal, year
from training.corpus.open_text import load_open_sentences, transcript


@pytest.mark.parametrize(
    ("typed", "spoken"),
    [
        ("Hello, World!", "hello world"),
        ("It's 5 o'clock.", "it's five o'clock"),
        (
            "I have 1,250 apples & 3.14 pies.",
            "i have one thousand two hundred fifty apples and three point one four pies",
        ),
        ("Dr. Smith paid $3.50 at 10:05 PM.", "doctor smith paid three dollars and fifty cents at ten oh five p m"),
        ("Call me at 7:30am, Mrs. Jones.", "call me at seven thirty a m missus jones"),
        ("She was born on the 2nd of May, 1999.", "she was born on the second of may nineteen ninety nine"),
        ("It costs £1 or €2.05", "it costs one pound or two euros and five cents"),
        ("50% off, #1 deal!", "fifty percent off number one deal"),
        ("The 21st runner of 1000000.", "the twenty first runner of one million"),
        ("a well-known “quote” – yes…", "a well known quote yes"),
        ("In 2024 we met 2 friends.", "in twenty twenty four we met two friends"),
        ("Room 101 has 3 beds", "room one hundred one has three beds"),
    ],
)
def test_typed_text_becomes_spoken_words(typed, spoken):
    assert normalize_tts_text(typed) == spoken


def test_number_words():
    """US style without "and"; the template language (training/corpus/template_text.py) says its numbers with these."""
    assert cardinal(0) == "zero"
    assert cardinal(40) == "forty"
    assert cardinal(999) == "nine hundred ninety nine"
    assert cardinal(4012) == "four thousand twelve"
    assert ordinal(23) == "twenty third"
    assert ordinal(30) == "thirtieth"
    assert year(2025) == "twenty twenty five"
    assert cardinal(2_000_000_019) == "two billion nineteen"
    assert ordinal(12) == "twelfth"
    assert ordinal(40) == "fortieth"
    assert ordinal(103) == "one hundred third"
    assert year(1905) == "nineteen oh five"
    assert year(2007) == "two thousand seven"
    with pytest.raises(ValueError, match="outside"):
        cardinal(-1)


def test_training_transcripts_pass_through_unchanged():
    """Normalising is idempotent on the spoken form, so a model hears at inference what it was trained on."""
    for sentence in load_open_sentences()[:3000]:
        spoken = transcript(sentence)
        assert normalize_tts_text(spoken) == spoken
        assert normalize_tts_text(sentence) == spoken


def test_text_without_words_is_refused_by_the_processor(processor):
    with pytest.raises(ValueError, match="no words to speak"):
        processor.tts_inputs(["hello", "?!"])
    assert (
        processor.tts_inputs(["ZERO!"])["input_ids"].tolist() == processor.tts_inputs(["zero"])["input_ids"].tolist()
    )
