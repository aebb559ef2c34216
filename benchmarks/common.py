"""What every benchmark records beside its numbers, and how it writes them (table on stdout, JSON on disk)."""

import argparse
import json
import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch
import transformers

from training.evaluation.eval_asr import git_commit


REPO_ROOT = Path(__file__).resolve().parents[1]


def environment(module: str, args: argparse.Namespace, skip: tuple[str, ...] = ()) -> dict:
    """Command, code version, library versions and machine load: what a reader needs to reproduce or compare."""
    return {
        "command": shlex.join([os.path.relpath(sys.executable, REPO_ROOT), "-m", module, *sys.argv[1:]]),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_at_start": os.getloadavg(),  # other processes skew CPU timings; this shows by how much
        **{key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items() if key not in skip},  # JSON-able
    }


def write_results(out: Path, env: dict, results: list[dict], table: str) -> None:
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "results": results, "table": table}, indent=2) + "\n")
    print(f"\nwrote {out}")


__all__ = ["REPO_ROOT", "environment", "write_results"]
