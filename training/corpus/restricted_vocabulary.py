"""TESU's espeak study corpus (issue 23): paired speech over a small vocabulary, text over the whole open corpus.

    python -m training.corpus.restricted_vocabulary DIR [--vocabulary_size 200] [--num_paired 3000] [--seed 0]

The vocabulary is the ten digit words plus the open corpus's most frequent other words, `vocabulary_size` in all.
DIR gets:
- `paired.jsonl`: training voices speaking everyday sentences made only of those words, and (a `DIGIT_SHARE`) strings
  of 1-3 digit words: what the encoder hears;
- `eval_in_vocabulary.jsonl`: held-out voices, other such sentences (the study's row a);
- `eval_new_words.jsonl`: held-out voices, sentences with at least one word never heard in `paired.jsonl` (row b);
- `eval_arithmetic.jsonl`: held-out voices saying two digits, with their sum as `answer`;
- `text_only.txt`: every open-corpus sentence except the held-out ones: what the text-only stage may read.
"""

import argparse
import collections
import json
import random
from pathlib import Path

from processing.text_normalization_mel_llm import cardinal
from training.corpus.open_text import load_open_sentences, transcript
from training.corpus.synthetic_corpus import (
    HELD_OUT_VOICES,
    PITCH,
    PITCH_RANGE,
    RATE_WPM,
    TRAIN_VOICES,
    balanced_voices,
    synthesize_rows,
)
from training.tiny import DIGIT_WORDS


NUM_EVAL = 100
DIGIT_SHARE = 0.1
MAX_EVAL_WORDS = 10  # held-out sentences stay short: a tiny model's WER, not its stamina, is the question
SPLITS = ("paired", "eval_in_vocabulary", "eval_new_words", "eval_arithmetic")


def vocabulary(sentences: list[str], size: int) -> set[str]:
    """The digit words and the most frequent other words of `sentences` (ties alphabetical), `size` in all."""
    counts = collections.Counter(
        word for sentence in sentences for word in sentence.split() if word not in DIGIT_WORDS
    )
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: size - len(DIGIT_WORDS)]
    return set(DIGIT_WORDS) | {word for word, _ in ranked}


def plan(vocabulary_size: int, num_paired: int, seed: int) -> tuple[list[dict], list[str], set[str]]:
    """Manifest rows of every split (without durations), the text-only sentences, and the vocabulary."""
    sentences = sorted({transcript(s) for s in load_open_sentences()} - {""})
    words = vocabulary(sentences, vocabulary_size)
    rng = random.Random(f"mel-llm-restricted-vocabulary-{seed}")
    inside = [s for s in sentences if set(s.split()) <= words]
    outside = [s for s in sentences if not set(s.split()) <= words and len(s.split()) <= MAX_EVAL_WORDS]
    rng.shuffle(inside)
    rng.shuffle(outside)
    held_in, paired_texts, held_new = inside[:NUM_EVAL], inside[NUM_EVAL:], outside[:NUM_EVAL]
    sums = [(rng.randrange(10), rng.randrange(10)) for _ in range(NUM_EVAL)]
    texts = {
        "paired": [
            " ".join(rng.choice(DIGIT_WORDS) for _ in range(rng.randint(1, 3)))
            if rng.random() < DIGIT_SHARE
            else paired_texts[i % len(paired_texts)]
            for i in range(num_paired)
        ],
        "eval_in_vocabulary": held_in,
        "eval_new_words": held_new,
        "eval_arithmetic": [f"{DIGIT_WORDS[a]} {DIGIT_WORDS[b]}" for a, b in sums],
    }
    rows = []
    for split in SPLITS:
        voices = balanced_voices(TRAIN_VOICES if split == "paired" else HELD_OUT_VOICES, len(texts[split]), rng)
        for index, (text, voice) in enumerate(zip(texts[split], voices, strict=True)):
            row = {"path": f"{split}/{index:06d}.wav", "transcript": text, "voice": voice, "speaker": voice}
            row |= {"split": split, "rate_wpm": rng.randint(*RATE_WPM), "pitch": rng.randint(*PITCH)}
            row["pitch_range"] = rng.randint(*PITCH_RANGE)
            if split == "eval_arithmetic":
                row["answer"] = cardinal(sums[index][0] + sums[index][1])
            rows.append(row)
    held_out = set(held_in) | set(held_new)
    return rows, [s for s in sentences if s not in held_out], words


def build(folder: str | Path, vocabulary_size: int = 200, num_paired: int = 3000, seed: int = 0) -> Path:
    """Synthesise the study corpus into `folder` (skipped when its `corpus_info.json` matches); returns `folder`."""
    folder = Path(folder)
    info = {"vocabulary_size": vocabulary_size, "num_paired": num_paired, "seed": seed, "num_eval": NUM_EVAL}
    info_path = folder / "corpus_info.json"
    if info_path.is_file() and json.loads(info_path.read_text()) == info:
        return folder
    rows, text_only, words = plan(vocabulary_size, num_paired, seed)
    for split in SPLITS:
        (folder / split).mkdir(parents=True, exist_ok=True)
    synthesize_rows(folder, rows, seed, None, None)
    for split in SPLITS:
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["split"] == split))
    (folder / "text_only.txt").write_text("\n".join(text_only) + "\n")
    (folder / "vocabulary.txt").write_text("\n".join(sorted(words)) + "\n")
    info_path.write_text(json.dumps(info, indent=2) + "\n")  # last: marks the build complete
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--vocabulary_size", type=int, default=200)
    parser.add_argument("--num_paired", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build(args.folder, args.vocabulary_size, args.num_paired, args.seed))


if __name__ == "__main__":
    main()
