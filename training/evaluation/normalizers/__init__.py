"""Whisper's text normalisers (MIT, vendored from openai-whisper 20250625): the Open ASR leaderboard protocol."""

from .basic import BasicTextNormalizer
from .english import EnglishTextNormalizer


__all__ = ["BasicTextNormalizer", "EnglishTextNormalizer"]
