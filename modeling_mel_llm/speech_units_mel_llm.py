"""The unit inventories of the unified (TESU) front end: what its CTC encoder emits and what text is spelled into.

Index 0 is the CTC blank; index 1 the word boundary. `chars` needs nothing; `phonemes` are espeak-ng's en-us IPA
phonemes (tied letters joined, stress marks dropped), the set its G2P gives for the 8 k words of the open corpus.
The processor (processing/unit_spelling_mel_llm.py) turns text into these units; the config saves the list.
"""

BLANK = "<blank>"
WORD_BOUNDARY = "|"
CHAR_UNITS = (WORD_BOUNDARY, "'", *"abcdefghijklmnopqrstuvwxyz")
PHONEME_UNITS = (
    WORD_BOUNDARY,
    *("p", "b", "t", "d", "k", "ɡ", "ʔ", "ɾ", "tʃ", "dʒ", "f", "v", "θ", "ð", "s", "z", "ʃ", "ʒ", "h", "x"),
    *("m", "n", "ŋ", "l", "əl", "ɹ", "w", "j"),
    *("i", "iː", "ɪ", "ᵻ", "e", "ɛ", "æ", "ə", "ɐ", "ɚ", "ʌ", "ɜː", "ɑ", "ɑː", "ɔ", "ɔː", "ʊ", "u", "uː", "o"),
    *("eɪ", "aɪ", "ɔɪ", "aʊ", "oʊ", "iə", "aɪə", "aɪɚ", "ɑːɹ", "ɔːɹ", "ɛɹ", "ɪɹ", "ʊɹ"),
)
UNIT_INVENTORIES = {"chars": CHAR_UNITS, "phonemes": PHONEME_UNITS}


def unit_vocabulary(units: str) -> list[str]:
    """The blank, then the inventory of `units` (`"chars"` or `"phonemes"`)."""
    if units not in UNIT_INVENTORIES:
        raise ValueError(f"units={units!r}; choose one of {tuple(UNIT_INVENTORIES)}.")
    return [BLANK, *UNIT_INVENTORIES[units]]


__all__ = ["BLANK", "CHAR_UNITS", "PHONEME_UNITS", "UNIT_INVENTORIES", "WORD_BOUNDARY", "unit_vocabulary"]
