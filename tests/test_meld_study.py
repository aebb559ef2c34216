"""benchmarks/meld_study.py: the three systems at equal compute, on the committed FSDD clips (a few steps)."""

import json

import pytest
import torch

from benchmarks.meld_study import main
from modeling_mel_llm.discrete_latent import MelLLMDiscreteLatent
from tests.conftest import REPO_ROOT


def test_code_entropy_counts_the_bits_each_group_uses():
    counts = torch.tensor([[2.0, 2.0, 0.0, 0.0], [5.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    torch.testing.assert_close(MelLLMDiscreteLatent.code_entropy_bits(counts), torch.tensor([1.0, 0.0, 2.0]))


def test_the_fsdd_part_trains_every_system_with_the_same_steps_and_reports_code_use(tmp_path):
    fixture = REPO_ROOT / "tests" / "fixtures" / "fsdd"
    out = main([
        "fsdd", "--fsdd_dir", str(fixture), "--seeds", "0", "--speakers", "theo", "--out_dir", str(tmp_path),
        "--max_steps=4", "--eval_max_samples=6", "--logging_steps=2",
    ])  # fmt: skip
    rows = {r["system"]: r for r in out["results"]}
    assert set(rows) == {"continuous", "joint", "two_stage"}
    assert rows["continuous"]["latent"] is None  # no codes on the paper's path
    for system in ("joint", "two_stage"):
        usage = rows[system]["latent"]
        assert 1.0 <= usage["code_perplexity"] <= 256
        assert 0 < usage["used_bits_per_second"] <= usage["nominal_bits_per_second"] == pytest.approx(100 * 8)
    assert rows["joint"]["parameters"] == rows["two_stage"]["parameters"] != rows["continuous"]["parameters"]
    written = json.loads((tmp_path / "fsdd.json").read_text())
    assert written["environment"]["overrides"] == ["--max_steps=4", "--eval_max_samples=6", "--logging_steps=2"]
    assert (tmp_path / "fsdd.png").stat().st_size > 0
    assert "two_stage" in (tmp_path / "fsdd.md").read_text()
