"""Training curve on disk: the Trainer's log history as CSV and as a PNG (loss and WER against steps)."""

import csv
from pathlib import Path

import matplotlib


matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


def write_training_log(log_history: list[dict], output_dir: Path) -> tuple[Path, Path]:
    """`training_log.csv` (one row per log event) and `training_curve.png`; returns both paths."""
    output_dir = Path(output_dir)
    keys = sorted({key for entry in log_history for key in entry})
    csv_path = output_dir / "training_log.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(log_history)

    figure, loss_axis = plt.subplots(figsize=(7, 4))
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    if train:
        loss_axis.plot(*zip(*train, strict=True), label="train loss")
    if evals:
        loss_axis.plot(*zip(*evals, strict=True), "o-", label="eval loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss")
    loss_axis.set_yscale("log")
    wers = [(e["step"], e["eval_wer"]) for e in log_history if "eval_wer" in e]
    if wers:
        wer_axis = loss_axis.twinx()
        wer_axis.plot(*zip(*wers, strict=True), "s--", color="tab:red", label="eval WER %")
        wer_axis.set_ylabel("WER %")
        wer_axis.legend(loc="upper center")
    if train or evals:
        loss_axis.legend(loc="upper right")
    figure.tight_layout()
    png_path = output_dir / "training_curve.png"
    figure.savefig(png_path, dpi=120)
    plt.close(figure)
    return csv_path, png_path


__all__ = ["write_training_log"]
