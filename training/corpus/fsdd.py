"""FSDD (Free Spoken Digit Dataset) from where a user has it: a folder with our `manifest.jsonl`, or a clone of the
upstream repository (`recordings/{digit}_{speaker}_{take}.wav`); without either, the Hub copy through `datasets`
(written once as a manifest folder in the mel-llm cache). Nothing is looked up next to the package.

    python -m training.train training/configs/fsdd_cpu.yaml --fsdd_dir ~/free-spoken-digit-dataset
    MEL_LLM_FSDD_DIR=~/free-spoken-digit-dataset python -m benchmarks.fsdd_loso
"""

import os
import re
from pathlib import Path

from training.data import Utterance, read_manifest


FSDD_DIR_ENV = "MEL_LLM_FSDD_DIR"
FSDD_HUB_DATASET = "mteb/free-spoken-digit-dataset"  # train/test splits; `audio` (8 kHz WAV bytes), `label` (digit)
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
    folder = Path(folder).expanduser() if folder else hub_fsdd_folder()
    if (folder / "manifest.jsonl").is_file():
        return read_manifest(folder / "manifest.jsonl")
    recordings = folder / "recordings" if (folder / "recordings").is_dir() else folder
    paths = sorted(p for p in recordings.glob("*.wav") if RECORDING_NAME.fullmatch(p.name))
    if not paths:
        raise ValueError(
            f"{folder} holds neither a manifest.jsonl nor FSDD recordings (0_jackson_0.wav, ...). {HOW_TO_GET_IT}"
        )
    return [_recording(path, index) for index, path in enumerate(paths)]


def hub_fsdd_folder(dataset: str = FSDD_HUB_DATASET) -> Path:
    """
    FSDD from the Hub (or a local `datasets` folder of the same columns) through `datasets`, written once as
    `recordings/*.wav` + `manifest.jsonl` under the mel-llm cache. The Hub copy keeps its own train/test splits and
    names no speakers (`speaker` is "unknown", so leave-one-speaker-out needs an upstream clone). Offline, one error
    names both ways in.
    """
    import json

    from datasets import Audio, load_dataset

    from training.corpus.synthetic_corpus import cache_root

    folder = cache_root() / "fsdd_hub" / re.sub(r"[^\w.-]+", "_", dataset)
    if (folder / "manifest.jsonl").is_file():
        return folder
    try:
        splits = {name: load_dataset(dataset, split=name) for name in ("train", "test")}
    except Exception as error:  # offline, no such dataset, no network: all end the same way for the user
        raise ValueError(
            f"No FSDD folder given, and FSDD could not be loaded from the Hub ({dataset}): {error}. {HOW_TO_GET_IT}"
        ) from error
    (folder / "recordings").mkdir(parents=True, exist_ok=True)
    rows = []
    for split, rows_of_split in splits.items():
        for index, row in enumerate(rows_of_split.cast_column("audio", Audio(decode=False))):
            path = folder / "recordings" / f"{split}_{index:05d}.wav"
            audio = row["audio"]
            path.write_bytes(audio["bytes"] if audio["bytes"] is not None else Path(audio["path"]).read_bytes())
            digit = int(row["label"])
            rows.append(
                {"path": f"recordings/{path.name}", "transcript": DIGIT_WORDS[digit], "digit": digit}
                | {"speaker": "unknown", "fsdd_split": split}
            )
    (folder / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))  # last: marks it done
    return folder


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


__all__ = ["DIGIT_WORDS", "FSDD_DIR_ENV", "FSDD_HUB_DATASET", "fsdd_utterances", "hub_fsdd_folder"]
