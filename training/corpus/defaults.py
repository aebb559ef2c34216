"""What the embedded corpus is made of by default: sizes, made-up accent settings. Importable without espeak-ng, so
training/arguments.py takes its defaults from here; synthetic_corpus.py and pseudo_accents.py build from them."""

from dataclasses import asdict, dataclass


DEFAULT_NUM_TRAIN, DEFAULT_NUM_EVAL = 16_000, 300  # the template-language corpus (configs/tiny_templates_cpu.yaml)
OPEN_NUM_TRAIN = 16_000  # the main job's open-text corpus, without made-up accents (training/configs/tiny_cpu.yaml)
# Share of training utterances spoken in a made-up accent (training.corpus.pseudo_accents), and how many such accents.
# 0.75 of 80 took the main job from 13.8 to 10.4-11.6 % WER on the held-out accents (docs/RESULTS.md, section 5).
PSEUDO_ACCENT_SHARE, PSEUDO_ACCENT_VOICES = 0.75, 80
DEFAULT_PSEUDO_ACCENTS = {"share": PSEUDO_ACCENT_SHARE, "voices": PSEUDO_ACCENT_VOICES}

# Vowel phonemes every training accent's table has (collected with espeak_TextToPhonemes over the corpus vocabulary).
_VOWELS = "0 3 3: @ @L A: A@ E I I2 O: O@ U V a a# aI aI@ aU aa e@ eI i i: i@ o@ oU u:"
VOWELS = _VOWELS.split()


@dataclass(frozen=True)
class AccentRules:
    """How far a made-up accent departs from its base accent: the range (min, max) of its random vowel `replace`
    rules. The defaults are the corpus's made-up accents."""

    vowel_swaps: tuple[int, int] = (2, 5)

    def __post_init__(self) -> None:
        low, high = self.vowel_swaps
        if not 0 <= low <= high <= len(VOWELS):
            raise ValueError(f"pseudo accents: vowel swaps {(low, high)} must be a range within 0..{len(VOWELS)}")

    def changes(self) -> dict:
        """The fields that differ from the defaults, as JSON reads them back: what a corpus cache key records (only
        the changes, so the default corpus keeps its key)."""
        default = asdict(DEFAULT_RULES)
        changed = {key: value for key, value in asdict(self).items() if value != default[key]}
        return {key: list(value) if isinstance(value, tuple) else value for key, value in changed.items()}


DEFAULT_RULES = AccentRules()


__all__ = [
    "DEFAULT_NUM_EVAL",
    "DEFAULT_NUM_TRAIN",
    "DEFAULT_PSEUDO_ACCENTS",
    "DEFAULT_RULES",
    "OPEN_NUM_TRAIN",
    "PSEUDO_ACCENT_SHARE",
    "PSEUDO_ACCENT_VOICES",
    "VOWELS",
    "AccentRules",
]
