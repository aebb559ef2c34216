"""Text as speech units for the unified (TESU) front end: text → units → one-hot posteriors, as the CTC encoder's.

The inventory is the model's (`config.unit_vocabulary`, index 0 the blank, "|" the word boundary); this file only
spells text into it. `chars`: the normalised letters and apostrophes; `phonemes`: espeak-ng's en-us IPA
(`espeak_mel_llm.ipa_words`), matched longest first against the inventory, stress and diacritics dropped.
"""

import re

import numpy as np

from .espeak_mel_llm import ipa_words
from .text_normalization_mel_llm import normalize_tts_text


WORD_BOUNDARY = "|"
IPA_MARKS_DROPPED = re.compile("[\u02c8\u02cc\u0303\u0329^]")  # primary/secondary stress, nasal, syllabic, tie


def _spell_word(spelling: str, vocabulary: list[str], longest: int, word: str) -> list[str]:
    """Greedy longest match of `spelling` against the inventory."""
    units, start = [], 0
    while start < len(spelling):
        for end in range(min(len(spelling), start + longest), start, -1):
            if spelling[start:end] in vocabulary:
                units.append(spelling[start:end])
                start = end
                break
        else:
            raise ValueError(f"{word!r} has {spelling[start]!r}, which is not a unit of this model's inventory.")
    return units


def text_to_units(text: str, kind: str, vocabulary: list[str]) -> list[str]:
    """The units of `text` (as typed: numbers and symbols are spelled out), words separated by the boundary unit."""
    words = normalize_tts_text(text).split()
    if not words:
        raise ValueError(f"{text!r} has no words to spell as units.")
    if kind == "chars":
        spellings = words
    elif kind == "phonemes":
        spellings = [IPA_MARKS_DROPPED.sub("", ipa) for ipa in ipa_words(" ".join(words))]
    else:
        raise ValueError(f"speech_units={kind!r}; choose 'chars' or 'phonemes'.")
    longest = max(map(len, vocabulary))
    units: list[str] = []
    for word, spelling in zip(words, spellings, strict=True):
        units += ([WORD_BOUNDARY] if units else []) + _spell_word(spelling, vocabulary, longest, word)
    return units


def one_hot_posteriors(unit_ids: list[int], num_units: int) -> np.ndarray:
    """(U, C) float32 rows, each all on its unit: what a perfectly sure CTC encoder gives after merging."""
    posteriors = np.zeros((len(unit_ids), num_units), dtype=np.float32)
    posteriors[np.arange(len(unit_ids)), unit_ids] = 1.0
    return posteriors


__all__ = ["WORD_BOUNDARY", "one_hot_posteriors", "text_to_units"]
