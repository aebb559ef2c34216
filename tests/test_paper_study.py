"""The paper study's plumbing at smoke size: every table written, layers frozen as labelled, reruns reuse runs."""

import json

import pytest
import torch
from safetensors.torch import load_file

from benchmarks import paper_study
from training.corpus.corpora import fsdd_splits, subsample


def test_subsample_is_a_seeded_ordered_share():
    utterances, _ = fsdd_splits(None)
    tenth = subsample(utterances, 0.1, seed=3)
    assert len(tenth) == round(0.1 * len(utterances))
    assert tenth == subsample(utterances, 0.1, seed=3)
    assert tenth != subsample(utterances, 0.1, seed=4)
    assert [u.line for u in tenth] == sorted(u.line for u in tenth)
    assert subsample(utterances, 1.0, seed=0) is utterances
    with pytest.raises(ValueError, match="train_fraction"):
        subsample(utterances, 0.0, seed=0)


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_study")
    argv = ["--size", "smoke", "--runs", str(root / "runs"), "--out", str(root / "out"), "--keep-models"]
    return root, argv, paper_study.main(argv)


def test_every_study_writes_its_table_json_and_plot(smoke_study):
    root, _, results = smoke_study
    for study in paper_study.STUDIES:
        report = json.loads((root / "out" / f"{study}.json").read_text())
        assert report["environment"]["git_commit"] is not None or report["environment"]["command"]
        assert "| " in (root / "out" / f"{study}.md").read_text()
    assert (root / "out" / "init.png").is_file()
    assert (root / "out" / "layers.png").is_file()

    frontends = {r["frontend"]: r for r in results["frontends"] if "frontend" in r}
    assert {r["seed"] for r in frontends.values()} == {0}  # each run's training seed, recorded beside its WER
    assert set(frontends) == {"stack", "conv", "encoder"}
    assert frontends["encoder"]["num_parameters"]["audio"] > frontends["conv"]["num_parameters"]["audio"]
    ratios = {r["ratio"] for r in results["frontends"] if "ratio" in r}
    if frontends["encoder"]["wer"] > 0:
        assert ratios == {"stack/encoder", "conv/encoder"}

    init_runs = [r for r in results["init"] if "init" in r]
    assert {(r["init"], r["train_fraction"]) for r in init_runs} == {
        (init, fraction)
        for init in ("random LM", "text LLM (SmolLM2-135M)", "multimodal checkpoint")
        for fraction in (0.05, 1.0)
    }
    for r in init_runs:
        assert r.get("skipped") or r["wer"] >= 0.0


def test_layer_ablation_freezes_the_layers_it_names(smoke_study):
    root, _, results = smoke_study
    assert {r["run"] for r in results["layers"]} == {"all", "none", "lower1", "upper1"}
    pretrained = load_file(root / "runs" / "pretrain" / "pretrain" / "model.safetensors")
    lower = load_file(root / "runs" / "layers" / "lower1" / "model.safetensors")

    def layer_weight(state: dict, index: int) -> torch.Tensor:
        return next(v for k, v in state.items() if f"layers.{index}.self_attn.q_proj.weight" in k)

    assert not torch.equal(layer_weight(lower, 0), layer_weight(pretrained, 0))  # [0, 1) trained
    assert torch.equal(layer_weight(lower, 1), layer_weight(pretrained, 1))  # layer 1 frozen


def test_a_rerun_reuses_finished_runs(smoke_study):
    root, argv, _ = smoke_study
    report = root / "runs" / "layers" / "upper1" / "report.json"
    before = report.stat().st_mtime_ns
    again = paper_study.main([*argv, "--study", "layers"])
    assert report.stat().st_mtime_ns == before
    assert [r["wer"] for r in again["layers"]] == [r["wer"] for r in smoke_study[2]["layers"]]
