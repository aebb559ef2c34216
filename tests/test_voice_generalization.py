"""benchmarks.voice_generalization: the four voice pools, their re-spoken clips, and a saved model scored on them."""

import json

from benchmarks import voice_generalization
from benchmarks.voice_generalization import POOLS
from training.corpus.synthetic_corpus import HELD_OUT_ACCENTS, TRAIN_VOICES


def accent(voice: str) -> str:
    return voice.split("+")[0]


def modifier(voice: str) -> str:
    return voice.partition("+")[2]


def test_pools_hold_out_what_their_names_say():
    training_accents, training_modifiers = {accent(v) for v in TRAIN_VOICES}, {modifier(v) for v in TRAIN_VOICES}
    for name, (new_accents, new_modifiers, voices) in POOLS.items():
        assert voices, name
        for voice in voices:
            assert (accent(voice) in HELD_OUT_ACCENTS) == new_accents, (name, voice)
            assert (accent(voice) in training_accents) != new_accents, (name, voice)
            assert (modifier(voice) in training_modifiers) != new_modifiers, (name, voice)


def test_main_respeaks_the_texts_per_pool_and_scores_a_saved_model(make_model, processor, tmp_path, monkeypatch):
    monkeypatch.setenv("MEL_LLM_CACHE", str(tmp_path / "cache"))
    texts = ["turn the lights on", "seven three nine", "the red cat ran", "call anna"]
    source = tmp_path / "eval.jsonl"
    rows = [
        {"path": f"eval/{i}.wav", "transcript": t, "rate_wpm": 170, "pitch": 50, "pitch_range": 50}
        for i, t in enumerate(texts)
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = make_model("llama", "stack")
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    out = tmp_path / "voices.json"
    argv = ["--model", str(tmp_path / "model"), "--eval-manifest", str(source), "--max-samples", "3"]
    argv += ["--voices-per-text", "2", "--max-new-tokens", "3", "--num-beams", "2", "--out", str(out)]
    results = voice_generalization.main(argv)
    assert list(results) == list(POOLS)
    assert all(r["n"] == 6 for r in results.values())  # 3 texts x 2 voices
    report = json.loads(out.read_text())
    assert [r["pool"] for r in report["results"]] == list(POOLS)
    assert "| new_speakers | training | held out | 6 |" in report["table"]
    (folder,) = (tmp_path / "cache" / "voice_generalization").iterdir()
    for name, (_, _, voices) in POOLS.items():
        spoken = [json.loads(line) for line in (folder / name / "eval.jsonl").read_text().splitlines()]
        assert [r["transcript"] for r in spoken] == texts[:3] * 2  # the same texts in every pool
        assert {r["voice"] for r in spoken} <= set(voices)
        assert len({r["voice"] for r in spoken}) == 6  # balanced: no voice twice before every voice once
        assert all((folder / name / r["path"]).stat().st_size > 1000 and r["duration"] > 0.2 for r in spoken)
    stamp = (folder / "new_accents" / "eval.jsonl").stat().st_mtime_ns
    voice_generalization.main(argv)
    assert (folder / "new_accents" / "eval.jsonl").stat().st_mtime_ns == stamp  # clips reused, not re-spoken
