"""What the equal-compute studies (tesu_study, meld_study) share: one training.train run in a scratch folder with its
cost (wall time, the Trainer's FLOPs estimate, parameters), and mean ± sd over seeds."""

import csv
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import write_results
from modeling_mel_llm import MelLLMForSpeechLM
from training.train import main as train


@dataclass
class TrainedRun:
    """A finished run: its report, the folder holding the saved model (gone after the `with`), and its cost."""

    report: dict
    folder: Path
    model: MelLLMForSpeechLM
    wall_s: float
    flos: float

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def cost(self) -> dict:
        return {"wall_s": self.wall_s, "flos": self.flos, "parameters": self.parameters}

    def wer_sets(self) -> dict:
        return {name: {"wer": s["wer"], "cer": s["cer"], "n": s["n"]} for name, s in self.report["sets"].items()}


@contextmanager
def trained_run(config: Path, overrides: list[str]) -> Iterator[TrainedRun]:
    """Train `config` with `overrides` into a temporary folder and hand the run over while the folder exists."""
    with tempfile.TemporaryDirectory() as output_dir:
        began = time.perf_counter()
        report = train([str(config), f"--output_dir={output_dir}", *overrides])
        wall = round(time.perf_counter() - began, 1)
        summary = report.get("summary")
        if summary:  # TESU's two stages each report their FLOPs
            flos = sum(summary["flos"].values())
        else:
            with open(Path(output_dir) / "training_log.csv") as f:
                flos = float([row for row in csv.DictReader(f) if row["total_flos"]][-1]["total_flos"])
        model = MelLLMForSpeechLM.from_pretrained(output_dir).eval()
        yield TrainedRun(report, Path(output_dir), model, wall, flos)


def grouped_bars(bars: dict[str, list[float]], groups: list[str], ylabel: str, path: Path) -> None:
    """A PNG with one bar per system (`bars` keys, each a value per group) in each group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 3.5))
    width = 0.8 / len(bars)
    for index, (system, heights) in enumerate(bars.items()):
        axes.bar([i + index * width for i in range(len(groups))], heights, width, label=system)
    axes.set_xticks([i + width * (len(bars) - 1) / 2 for i in range(len(groups))], groups, fontsize=7)
    axes.set_ylabel(ylabel, fontsize=8)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_study(out_dir: Path, part: str, env: dict, results: list[dict], table: str) -> None:
    """`<part>.json` (environment, runs, table) and `<part>.md` (command, commit, table) under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_results(out_dir / f"{part}.json", env, results, table)
    (out_dir / f"{part}.md").write_text(f"`{env['command']}` at {env['git_commit']}\n\n{table}\n")


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


__all__ = ["TrainedRun", "grouped_bars", "mean_sd", "trained_run", "write_study"]
