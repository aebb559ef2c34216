"""English text normalisation for WER: Whisper's `EnglishTextNormalizer`, as the Open ASR leaderboard applies it.

Scores are only comparable with published ones when references and hypotheses go through the same normaliser, so the
leaderboard's is vendored (MIT) in `training/evaluation/normalizers/` rather than re-implemented.
"""

from functools import cache

from training.evaluation.normalizers import EnglishTextNormalizer


@cache
def _english_normalizer() -> EnglishTextNormalizer:
    """Built once: the constructor reads the ~1,700-entry British→American spelling map from `english.json`."""
    return EnglishTextNormalizer()


def normalize_english(text: str) -> str:
    """Lower-case, expand contractions and titles, spell numbers as digits, Americanise spelling, drop punctuation."""
    return _english_normalizer()(text).strip()


__all__ = ["normalize_english"]
