"""The evaluation tool: Whisper normaliser, leaderboard WER/CER bookkeeping, reports, and runs on a real tiny model."""

import ast
import json
import sys
from importlib import resources
from pathlib import Path

import pytest

from tests.conftest import FSDD_DIR
from training.data import Utterance, read_manifest
from training.evaluation.eval_asr import (
    aggregate,
    evaluate_sets,
    main,
    parse_data_spec,
    score,
    summarize_set,
    write_reports,
)
from training.evaluation.text_normalizer import normalize_english


def utterances(texts: list[str]) -> list[Utterance]:
    return [Utterance(Path(f"clip{i}.wav"), text, line=i + 1) for i, text in enumerate(texts)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith's colour", "mister smith is color"),  # title, 's contraction, British spelling (whisper's output)
        ("twenty five", "25"),
        ("Hello, World!", "hello world"),
        ("I won't pay $20.50 for one hundred and two apples.", "i will not pay $20.50 for 102 apples"),
        ("uh [noise] (laughs) hmm", ""),  # fillers and bracketed events vanish
        ("Ça naïve ŒUVRE", "ca naive oeuvre"),
    ],
)
def test_english_normalizer(text, expected):
    assert normalize_english(text) == expected


def test_vendored_normalizer_imports_only_stdlib_and_regex_and_ships_its_data():
    folder = Path(__file__).resolve().parents[1] / "training" / "evaluation" / "normalizers"
    for file in folder.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            assert all(n.split(".")[0] in sys.stdlib_module_names | {"regex"} for n in names), (file.name, names)
    assert resources.files("training.evaluation.normalizers").joinpath("english.json").is_file()
    assert "MIT License" in (folder / "LICENSE").read_text()


def test_wer_cer_and_error_counts_by_hand():
    # Words: "the cat sat"→"the cat sit" is 1 substitution; "hello world"→"hello" is 1 deletion.
    # WER = (S+D+I)/N = (1+1+0)/(3+2) = 2/5 = 40.00.
    # Characters (spaces count): "sat"→"sit" is 1 substitution; " world" is 6 deletions; N = 11+11 = 22.
    # CER = 7/22 = 31.818... → 31.82. Per utterance: 1/3 = 33.33 and 1/2 = 50.00.
    scores = score(["the cat sat", "hello world"], ["the cat sit", "hello"])
    assert scores["wer"] == 40.00
    assert scores["cer"] == 31.82
    assert (scores["substitutions"], scores["deletions"], scores["insertions"]) == (1, 1, 0)
    assert scores["reference_words"] == 5
    assert scores["per_utterance"] == [(1, 3), (1, 2)]
    # One insertion: "a b" → "a x b" is 1 error over 2 words.
    assert score(["a b"], ["a x b"])["insertions"] == 1


def test_summary_normalises_and_sorts_the_worst_utterances():
    refs = ["The cat sat.", "Hello, world!", "Twenty five", "good"]
    hyps = ["the cat sit", "hello", "25", "bad"]
    summary = summarize_set(utterances(refs), hyps, audio_seconds=8.0, transcribe_seconds=2.0, worst_n=10)
    # Normalised: "25" == "25"; errors 1/3, 1/2, 0/1, 1/1 → corpus (1+1+0+1)/(3+2+1+1) = 3/7 = 42.86.
    assert summary["n"] == 4
    assert summary["wer"] == 42.86
    assert summary["rtfx"] == 4.0
    assert [r["wer"] for r in summary["worst"]] == [100.0, 50.0, 33.33]  # error-free utterances are not listed
    assert summary["worst"][0]["normalized_reference"] == "good"
    assert summarize_set(utterances(refs), hyps, worst_n=2)["worst"][1]["wer"] == 50.0


def test_average_is_the_unweighted_mean_of_set_wers():
    small = summarize_set(utterances(["one"]), ["two"])  # 1 word, WER 100
    large = summarize_set(utterances(["yes"] * 9), ["yes"] * 9)  # 9 words, WER 0
    results = aggregate({"small": small, "large": large})
    assert results["average_wer"] == 50.0  # not the pooled 1/10 = 10.0


def test_reports_have_the_fields_and_sorted_worst_errors(tmp_path):
    sets = {
        "a": summarize_set(utterances(["the cat sat", "hello world", "one"]), ["the cat sit", "hello", "two"], 3, 1),
        "b": summarize_set(utterances(["yes no"]), ["yes no"], 1.0, 0.5),
    }
    json_path, md_path = write_reports(aggregate(sets), tmp_path, model_path="runs/x", command="python -m x")
    report = json.loads(json_path.read_text())
    assert {"model", "command", "git_commit", "average_wer", "rtfx", "sets"} <= set(report)
    assert report["model"] == "runs/x"
    assert report["average_wer"] == round((sets["a"]["wer"] + 0.0) / 2, 2)
    for s in report["sets"].values():
        assert {"n", "wer", "cer", "substitutions", "deletions", "insertions", "rtfx", "audio_seconds"} <= set(s)
        assert "utterances" not in s
    worst = [r["wer"] for r in report["sets"]["a"]["worst"]]
    assert worst == sorted(worst, reverse=True) == [100.0, 50.0, 33.33]
    markdown = md_path.read_text()
    assert "| set | n | WER | CER |" in markdown
    assert "| a | 3 |" in markdown
    assert "  - ref: hello world\n  - hyp: hello" in markdown
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 4


def test_data_spec_names():
    assert parse_data_spec("clean=/data/test.jsonl") == ("clean", Path("/data/test.jsonl"))
    assert parse_data_spec("/data/test-other.jsonl") == ("test-other", Path("/data/test-other.jsonl"))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, fsdd_rows, fsdd_batch) -> Path:
    """The four clips `fsdd_batch` holds, plus one whose reference normalises to nothing ("uh")."""
    chosen, seen = [], set()
    for row in fsdd_rows:
        if row["speaker"] == "jackson" and row["fsdd_split"] == "test" and row["digit"] not in seen:
            chosen.append(row)
            seen.add(row["digit"])
    chosen = chosen[:4]
    assert [r["transcript"] for r in chosen] == fsdd_batch[1]
    lines = [{"path": str(FSDD_DIR / r["path"]), "transcript": r["transcript"]} for r in chosen]
    lines.append({"path": str(FSDD_DIR / chosen[0]["path"]), "transcript": "uh"})
    path = tmp_path_factory.mktemp("manifest") / "fsdd4.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.slow
def test_evaluate_sets_end_to_end_on_an_overfit_model(overfit_models, processor, manifest):
    model, _ = overfit_models("llama", "stack")
    sets = {"fsdd4": read_manifest(manifest), "first2": read_manifest(manifest)[:2]}
    # The model was overfit on the clips at their recorded level, so no peak normalisation here.
    results = evaluate_sets(model, processor, sets, batch_size=3, peak_normalize=False, max_new_tokens=12)
    fsdd4 = results["sets"]["fsdd4"]
    assert (fsdd4["n"], fsdd4["dropped_empty_reference"]) == (4, 1)
    assert [u["hypothesis"] for u in fsdd4["utterances"]] == [u.text for u in sets["fsdd4"][:4]]
    assert (fsdd4["wer"], fsdd4["cer"], fsdd4["worst"]) == (0.0, 0.0, [])
    assert results["average_wer"] == 0.0
    assert fsdd4["audio_seconds"] > 0
    assert fsdd4["rtfx"] > 0
    assert results["sets"]["first2"]["n"] == 2


@pytest.mark.slow
def test_cli_on_a_saved_model_folder(overfit_models, processor, manifest, tmp_path):
    model, _ = overfit_models("llama", "stack")
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    out = tmp_path / "eval"
    argv = ["--model", str(tmp_path / "model"), "--data", f"digits={manifest}", "--data", str(manifest)]
    argv += [
        "--out-dir",
        str(out),
        "--device",
        "cpu",
        "--batch-size",
        "2",
        "--no-peak-normalize",
        "--max-samples",
        "3",
        "--num-beams",
        "2",
    ]
    results = main(argv)
    report = json.loads((out / "report.json").read_text())
    assert set(report["sets"]) == {"digits", "fsdd4"}
    assert report["sets"]["digits"]["n"] == 3
    assert report["average_wer"] == results["average_wer"] == 0.0
    assert report["decoding"] == {"num_beams": 2, "max_new_tokens": 128}
    assert report["model"] == str(tmp_path / "model")
    assert "training.evaluation.eval_asr" in report["command"]
    assert (out / "report.md").is_file()


def test_evaluate_asr_evaluator_runs_on_the_pipeline(make_model, processor, fsdd_batch, tmp_path):
    """`evaluate`'s ASR evaluator, called as its docs show with a pipeline object, runs to the end once
    `allow_evaluate_evaluators()` has given transformers 5 the name it looks up; its WER is the package's own."""
    import numpy as np
    from datasets import Dataset
    from evaluate import evaluator
    from transformers import pipeline

    from training.evaluation.evaluate_compat import allow_evaluate_evaluators
    from training.evaluation.wer_metric import load_wer

    make_model().save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    clips, texts = fsdd_batch
    data = Dataset.from_dict(
        {"audio": [{"array": np.asarray(c), "sampling_rate": 16_000} for c in clips], "text": texts}
    )
    asr = pipeline("automatic-speech-recognition", model=str(tmp_path), trust_remote_code=True)
    allow_evaluate_evaluators()
    allow_evaluate_evaluators()  # idempotent
    result = evaluator("automatic-speech-recognition").compute(
        model_or_pipeline=asr,
        data=data,
        input_column="audio",
        label_column="text",
        metric=load_wer(),
        generation_kwargs={"max_new_tokens": 3},
    )
    hypotheses = [asr({"raw": np.asarray(c), "sampling_rate": 16_000}, max_new_tokens=3)["text"] for c in clips]
    assert result["wer"] == pytest.approx(load_wer().compute(predictions=hypotheses, references=texts))
