"""Open-vocabulary English for the synthetic corpus: the committed sentence list and its held-out splits.

`data/open_sentences.txt` holds everyday English sentences written by SmolLM2-135M-Instruct (made by
`make_open_text.py`, settings there). Each is spoken as its transcript: lower case, words and apostrophes only.
`open_text_splits` divides them so that two held-out sets measure two kinds of generalisation:
- unseen sentences whose every word occurs in the training text ("a");
- sentences holding at least one word that no training sentence has ("b": held-out words chosen once, seeded).
"""

import logging
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from processing.text_normalization_mel_llm import normalize_tts_text


logger = logging.getLogger(__name__)
OPEN_SENTENCES_PATH = Path(__file__).parent / "data" / "open_sentences.txt"
MIN_WORDS, MAX_WORDS = 3, 20
COMMON_WORDS = 1500  # the most frequent words are never held out: (b) tests rare words, as real OOVs are
_ALLOWED = re.compile(r"[A-Za-z][A-Za-z ,.;:!?'\-]*[.!?]")
_PREFIX = re.compile(r"^\s*(?:\d+[.)]|[-*•]|(?:[A-Z][a-z]+ ?\d?|[A-Z]):)\s*")  # "1.", "-", "Friend 1:", "A:"
_META = re.compile(r"\b(?:sentences?|paragraph|conversation|dialogue|here are|here is|here's)\b", re.IGNORECASE)
_BLOCKED = {"damn", "hell", "shit", "fuck", "fucking", "bitch", "bastard", "crap", "sex", "sexy", "kill", "killed"}


def transcript(sentence: str) -> str:
    """The spoken form, by the same rules as TTS input (`normalize_tts_text`): lower case, hyphens as spaces,
    abbreviations spelled out, no punctuation but word-internal apostrophes."""
    return normalize_tts_text(sentence)


def split_sentences(text: str) -> list[str]:
    """A generation's lines cut into sentences, with list numbers, speaker labels and quotes removed."""
    sentences = []
    for line in text.splitlines():
        line = _PREFIX.sub("", line.replace("’", "'").replace("‘", "'"))
        line = line.replace('"', " ").replace("“", " ").replace("”", " ")
        sentences += [" ".join(s.split()) for s in re.split(r"(?<=[.!?])\s+", line) if s.strip()]
    return sentences


def is_clean(sentence: str) -> bool:
    """Plain English prose of 3-20 words: letters and ordinary punctuation only (no digits or symbols), a capital
    first and a full stop, question or exclamation mark last, no talk about the writing itself, no rude words."""
    if not _ALLOWED.fullmatch(sentence) or not sentence[0].isupper() or _META.search(sentence):
        return False
    words = transcript(sentence).split()
    return MIN_WORDS <= len(words) <= MAX_WORDS and not _BLOCKED.intersection(words)


def clean_sentences(texts: Iterable[str]) -> list[str]:
    """Every clean sentence of `texts` once (the first spelling of each transcript), in order of appearance."""
    seen, kept = set(), []
    for text in texts:
        for sentence in split_sentences(text):
            key = transcript(sentence)
            if key not in seen and is_clean(sentence):
                seen.add(key)
                kept.append(sentence)
    return kept


def load_open_sentences(path: str | Path = OPEN_SENTENCES_PATH) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if line.strip()]


def text_statistics(sentences: list[str]) -> dict:
    words = [w for s in sentences for w in transcript(s).split()]
    return {
        "sentences": len(sentences),
        "distinct_words": len(set(words)),
        "words": len(words),
        "mean_words_per_sentence": round(len(words) / max(1, len(sentences)), 2),
    }


def oov_rate(held_out: list[str], training: list[str]) -> float:
    """Share of the word tokens of `held_out` transcripts that no `training` transcript contains."""
    vocabulary = {w for t in training for w in t.split()}
    words = [w for t in held_out for w in t.split()]
    return sum(w not in vocabulary for w in words) / max(1, len(words))


def open_text_splits(num_train: int, num_seen: int, num_unseen_words: int, seed: int) -> dict[str, list[str]]:
    """
    Transcripts for `train` (`num_train`, cycling through the training pool if it is smaller), `seen_words` (set a:
    `num_seen` unseen sentences, all of whose words the training text has; a training set too small to cover them
    gets those with the fewest new words, and a warning) and `unseen_words` (set b:
    `num_unseen_words` sentences, each holding a held-out word). Held-out words are drawn from the words outside the
    `COMMON_WORDS` most frequent, until their sentences are twice `num_unseen_words`; no training sentence has one.
    """
    texts = list(dict.fromkeys(transcript(s) for s in load_open_sentences()))
    rng = random.Random(f"mel-llm-open-text-{seed}")
    counts = Counter(w for t in texts for w in t.split())
    rare = sorted(w for w, _ in counts.most_common()[COMMON_WORDS:])
    rng.shuffle(rare)
    sentences_with = defaultdict(set)
    for index, text in enumerate(texts):
        for word in text.split():
            sentences_with[word].add(index)
    held_out: set[int] = set()
    for word in rare:
        if len(held_out) >= 2 * num_unseen_words:
            break
        held_out |= sentences_with[word]
    unseen_pool = [texts[i] for i in sorted(held_out)]
    pool = [t for i, t in enumerate(texts) if i not in held_out]
    rng.shuffle(pool)
    rng.shuffle(unseen_pool)
    if len(pool) <= 4 * num_seen:
        raise ValueError(f"The open text has {len(pool)} usable sentences; {num_seen} held-out ones need more.")
    train_pool, spare = pool[: len(pool) - 4 * num_seen], pool[len(pool) - 4 * num_seen :]
    train = [train_pool[i % len(train_pool)] for i in range(num_train)]
    vocabulary = {w for t in train for w in t.split()}
    if len(unseen_pool) < num_unseen_words:
        raise ValueError(f"The open text has too few sentences for {num_unseen_words} with held-out words.")
    # Most covered first; a small training set leaves too few fully covered sentences, and then set (a) says so.
    seen = sorted(spare, key=lambda t: sum(w not in vocabulary for w in t.split()))[:num_seen]
    covered = sum(vocabulary.issuperset(t.split()) for t in seen)
    if covered < len(seen):
        logger.warning(
            "Only %d of the %d unseen sentences of set (a) have every word in the %d training sentences (too few "
            "for full cover); the rest have the fewest new words.",
            covered,
            num_seen,
            num_train,
        )
    return {"train": train, "seen_words": seen, "unseen_words": unseen_pool[:num_unseen_words]}


__all__ = [
    "OPEN_SENTENCES_PATH",
    "clean_sentences",
    "is_clean",
    "load_open_sentences",
    "oov_rate",
    "open_text_splits",
    "split_sentences",
    "text_statistics",
    "transcript",
]
