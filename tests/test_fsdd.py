"""training.corpus.fsdd: FSDD from a manifest folder or an upstream clone, and a clear error without either."""

import shutil

import pytest

from tests.conftest import FSDD_DIR
from training.arguments import parse_config
from training.corpus.corpora import fsdd_splits
from training.corpus.fsdd import DIGIT_WORDS, FSDD_DIR_ENV, fsdd_utterances


def test_upstream_layout_is_split_by_take_as_upstream_does(tmp_path):
    (tmp_path / "recordings").mkdir()
    for name in ("3_theo_0.wav", "3_theo_4.wav", "3_theo_5.wav", "7_jackson_12.wav"):
        shutil.copy(FSDD_DIR / "recordings" / "0_jackson_0.wav", tmp_path / "recordings" / name)
    (tmp_path / "recordings" / "notes.wav").write_bytes(b"")  # not a recording name: ignored
    utterances = fsdd_utterances(tmp_path)
    assert [(u.text, u.metadata["speaker"], u.metadata["take"]) for u in utterances] == [
        ("three", "theo", 0),
        ("three", "theo", 4),
        ("three", "theo", 5),
        ("seven", "jackson", 12),
    ]
    assert [u.metadata["fsdd_split"] for u in utterances] == ["test", "test", "train", "train"]
    train, sets = fsdd_splits(None, str(tmp_path / "recordings"))  # the recordings folder itself works too
    assert [u.text for u in train] == ["three", "seven"]
    assert [u.metadata["take"] for u in sets["fsdd_test"]] == [0, 4]


def test_a_manifest_folder_and_the_environment_variable(monkeypatch):
    from_folder = fsdd_utterances(FSDD_DIR)
    assert len(from_folder) == 132
    monkeypatch.setenv(FSDD_DIR_ENV, str(FSDD_DIR))
    assert fsdd_utterances() == from_folder


def test_no_fsdd_folder_offline_names_both_ways_to_give_one(monkeypatch, tmp_path):
    monkeypatch.delenv(FSDD_DIR_ENV, raising=False)
    for name, value in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("MEL_LLM_CACHE", str(tmp_path))):
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"could not be loaded from the Hub.*--fsdd_dir DIR or set {FSDD_DIR_ENV}"):
        fsdd_utterances()
    with pytest.raises(ValueError, match=r"neither a manifest\.jsonl nor FSDD recordings"):
        fsdd_utterances(tmp_path)
    assert parse_config(["--fsdd_dir", str(tmp_path)])[1].fsdd_dir == str(tmp_path)


def test_the_hub_copy_becomes_a_manifest_folder(monkeypatch, tmp_path):
    """The Hub loading code, run on a local `datasets` folder of the Hub copy's columns (audio bytes, label)."""
    from datasets import Audio, Dataset

    from training.corpus.fsdd import hub_fsdd_folder

    monkeypatch.setenv("MEL_LLM_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "hub_copy" / "data"
    source.mkdir(parents=True)
    recordings = sorted((FSDD_DIR / "recordings").glob("*.wav"))
    for split, files in (("train", recordings[:3]), ("test", recordings[3:5])):
        labels = [int(path.name[0]) for path in files]
        audio = [{"bytes": path.read_bytes(), "path": path.name} for path in files]  # embedded, as on the Hub
        rows = Dataset.from_dict({"audio": audio, "label": labels})
        rows.cast_column("audio", Audio(decode=False)).to_parquet(str(source / f"{split}-00000-of-00001.parquet"))
    folder = hub_fsdd_folder(str(tmp_path / "hub_copy"))
    utterances = fsdd_utterances(folder)
    assert [u.metadata["fsdd_split"] for u in utterances] == ["train"] * 3 + ["test"] * 2
    assert [u.text for u in utterances] == [DIGIT_WORDS[int(p.name[0])] for p in recordings[:5]]
    assert utterances[0].audio_path.read_bytes() == recordings[0].read_bytes()
    assert hub_fsdd_folder(str(tmp_path / "hub_copy")) == folder  # written once, then reused
