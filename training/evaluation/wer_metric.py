"""The offline WER `evaluate` module (training/evaluation/wer/wer.py), loaded without touching the Hub."""

from pathlib import Path

import evaluate


WER_MODULE = Path(__file__).with_name("wer") / "wer.py"


def load_wer() -> evaluate.EvaluationModule:
    """`evaluate.load` of the bundled WER script: what `evaluate.load("wer")` gives, without a download."""
    return evaluate.load(str(WER_MODULE))


__all__ = ["WER_MODULE", "load_wer"]
