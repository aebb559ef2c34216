"""FSDD (Free Spoken Digit Dataset) from where a user has it: a folder with our `manifest.jsonl`, or a clone of the
upstream repository (`recordings/{digit}_{speaker}_{take}.wav`). Nothing is looked up next to the package.

    python -m training.train training/configs/fsdd_cpu.yaml --fsdd_dir ~/free-spoken-digit-dataset
    MEL_LLM_FSDD_DIR=~/free-spoken-digit-dataset python -m benchmarks.fsdd_loso
"""

import os
import re
from pathlib import Path

from training.data import Utterance, read_manifest


FSDD_DIR_ENV = "MEL_LLM_FSDD_DIR"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEST_TAKES = range(5)  # the upstream convention: takes 0-4 of every speaker and digit are the test set
RECORDING_NAME = re.compile(r"(?P<digit>\d)_(?P<speaker>[^_]+)_(?P<take>\d+)\.wav")
HOW_TO_GET_IT = (
    f"Pass --fsdd_dir DIR or set {FSDD_DIR_ENV}=DIR, where DIR is a clone of "
    "https://github.com/Jakobovski/free-spoken-digit-dataset (its recordings/ folder) or a folder with a "
    "manifest.jsonl of `path`/`transcript` rows."
)


def fsdd_utterances(fsdd_dir: str | os.PathLike | None = None) -> list[Utterance]:
    """Every FSDD recording, with `digit`, `speaker`, `take` and `fsdd_split` metadata, from `fsdd_dir` (else the
    `MEL_LLM_FSDD_DIR` environment variable)."""
    folder = fsdd_dir if fsdd_dir is not None else os.environ.get(FSDD_DIR_ENV)
    if not folder:
        raise ValueError(f"No FSDD folder given. {HOW_TO_GET_IT}")
    folder = Path(folder).expanduser()
    if (folder / "manifest.jsonl").is_file():
        return read_manifest(folder / "manifest.jsonl")
    recordings = folder / "recordings" if (folder / "recordings").is_dir() else folder
    paths = sorted(p for p in recordings.glob("*.wav") if RECORDING_NAME.fullmatch(p.name))
    if not paths:
        raise ValueError(
            f"{folder} holds neither a manifest.jsonl nor FSDD recordings (0_jackson_0.wav, ...). {HOW_TO_GET_IT}"
        )
    return [_recording(path, index) for index, path in enumerate(paths)]


def _recording(path: Path, index: int) -> Utterance:
    """One upstream recording, its transcript and split read from its name."""
    match = RECORDING_NAME.fullmatch(path.name)
    digit, take = int(match["digit"]), int(match["take"])
    metadata = {
        "digit": digit,
        "speaker": match["speaker"],
        "take": take,
        "fsdd_split": "test" if take in TEST_TAKES else "train",
    }
    return Utterance(path, DIGIT_WORDS[digit], index, metadata)


__all__ = ["DIGIT_WORDS", "FSDD_DIR_ENV", "fsdd_utterances"]
