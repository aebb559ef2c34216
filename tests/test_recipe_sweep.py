"""The recipe sweep at smoke size: variants train in parallel processes, the table and JSON hold each one's WER."""

import json

import pytest
import yaml

from benchmarks import recipe_sweep
from training.train import main as train_main


def test_sweep_trains_each_variant_reuses_finished_runs_and_names_failures(tmp_path):
    sweep = {
        "config": "training/configs/fsdd_cpu.yaml",
        "common": ["--max_steps=2", "--eval_max_samples=4", "--tiny_hidden_size=32", "--tiny_num_layers=1"],
        "variants": {"base": [], "packed": ["--pack_sequences"], "broken": ["--tts_ratio=0.5"]},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    out, runs = tmp_path / "sweep.json", tmp_path / "runs"
    argv = ["--sweep", str(path), "--runs", str(runs), "--parallel", "3", "--out", str(out)]
    rows = recipe_sweep.main(argv)

    by_name = {row["variant"]: row for row in rows}
    assert [row["variant"] for row in rows] == ["base", "packed", "broken"]
    for name in ("base", "packed"):
        assert by_name[name]["returncode"] == 0
        assert by_name[name]["wer"] >= 0
        assert "fsdd_test" in by_name[name]["sets"]
        assert (runs / name / "report.json").is_file()
    assert by_name["broken"]["returncode"] != 0
    assert "wer" not in by_name["broken"]
    assert "needs a model with a mel head" in (runs / "broken" / "train.log").read_text()
    written = json.loads(out.read_text())
    assert "| broken |" in written["table"]
    assert written["environment"]["device"] == "cpu"

    (runs / "base" / "report.json").write_text(
        json.dumps({**json.loads((runs / "base" / "report.json").read_text()), "average_wer": 12.5})
    )
    rerun = recipe_sweep.main([*argv, "--only", "base"])
    assert rerun[0]["wer"] == 12.5  # a finished run is reused, not retrained


def test_a_sweep_without_variants_or_with_unknown_ones_is_refused(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"config": "training/configs/fsdd_cpu.yaml", "variants": {}}))
    with pytest.raises(ValueError, match="no variants"):
        recipe_sweep.main(["--sweep", str(path)])
    path.write_text(yaml.safe_dump({"config": "training/configs/fsdd_cpu.yaml", "variants": {"a": []}}))
    with pytest.raises(SystemExit):
        recipe_sweep.main(["--sweep", str(path), "--only", "b"])


def test_a_tts_sweep_scores_each_runs_speech_with_the_judge(tmp_path, monkeypatch):
    monkeypatch.setenv("MEL_LLM_CACHE", str(tmp_path / "cache"))
    judge = tmp_path / "judge"
    tiny = ["--tiny_hidden_size=32", "--tiny_num_layers=1", "--tiny_vocab_size=200", "--save_strategy=no"]
    corpus = ["--synthetic_num_train=24", "--synthetic_num_eval=4", "--synthetic_voice=en-us"]
    asr = ["--config", "training/configs/tiny_cpu.yaml", *tiny, *corpus, "--max_steps=2", "--eval_max_samples=0"]
    assert train_main([*asr, f"--output_dir={judge}"]) is not None
    sweep = {
        "config": "training/configs/tts_cpu.yaml",
        "common": [*tiny, *corpus, "--max_steps=2"],
        "variants": {"teacher_forced": [], "scheduled": ["--tts_scheduled_sampling=0.5"]},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    runs = tmp_path / "runs"
    argv = ["--sweep", str(path), "--runs", str(runs), "--parallel", "2", "--out", str(tmp_path / "sweep.json")]
    rows = recipe_sweep.main(
        [*argv, "--tts-judge", str(judge), "--tts-eval-args", "--max-samples 2 --max-new-frames 40"]
    )

    for row in rows:
        assert row["returncode"] == 0, (runs / row["variant"] / "train.log").read_text()[-2000:]
        scored = json.loads((runs / row["variant"] / "tts_eval.json").read_text())["results"][0]
        assert scored["asr_model"] == str(judge)
        assert scored["num_sentences"] == 2
        assert row["wer"] == scored["wer"]
        assert row["sets"]["tts"]["cer"] == scored["cer"]
    settings = yaml.safe_load((runs / "scheduled" / "run_config.yaml").read_text())
    assert settings["model"]["tts_scheduled_sampling"] == 0.5  # a training setting: in the run, not the model
    score = runs / "scheduled" / "tts_eval.json"
    written = json.loads(score.read_text())
    written["results"][0]["wer"] = 12.5
    score.write_text(json.dumps(written))
    rerun = recipe_sweep.main([*argv, "--tts-judge", str(judge), "--only", "scheduled"])
    assert rerun[0]["wer"] == 12.5  # a scored run is reused, not retrained
