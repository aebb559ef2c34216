"""FSDD leave-one-speaker-out: train `fsdd_cpu.yaml` on four speakers, test on the fifth, for every speaker.

    python -m benchmarks.fsdd_loso [--out benchmarks/results/fsdd_loso.json] [--key=value ...]

Extra `--key=value` arguments go to every `training.train` run (e.g. `--max_steps=400`). Prints a table of the five
folds and their average and writes JSON with the per-fold reports.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import environment, write_results
from training.progress import announce
from training.train import main as train


SPEAKERS = ("jackson", "theo", "nicolas", "lucas", "yweweler")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fsdd_loso.json"))
    parser.add_argument("--config", default="training/configs/fsdd_cpu.yaml")
    args, overrides = parser.parse_known_args()
    env = environment("benchmarks.fsdd_loso", args)
    results = []
    announce(f"Leave-one-speaker-out on FSDD: {len(SPEAKERS)} folds, each one training.train run (minutes each)")
    for fold, speaker in enumerate(SPEAKERS, start=1):
        announce(f"fold {fold}/{len(SPEAKERS)}: {speaker} held out")
        with tempfile.TemporaryDirectory() as output_dir:
            started = time.perf_counter()
            report = train([args.config, f"--fsdd_test_speaker={speaker}", f"--output_dir={output_dir}", *overrides])
            fold = report["sets"][f"fsdd_{speaker}"]
            results.append(
                {
                    "test_speaker": speaker,
                    "n": fold["n"],
                    "wer": fold["wer"],
                    "cer": fold["cer"],
                    "wall_s": round(time.perf_counter() - started, 1),
                }
            )
        print(f"fold {speaker}: WER {results[-1]['wer']:.2f}", file=sys.stderr, flush=True)
    average = sum(r["wer"] for r in results) / len(results)
    lines = ["| test speaker | clips | WER % | CER % | wall s |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['test_speaker']} | {r['n']} | {r['wer']:.2f} | {r['cer']:.2f} | {r['wall_s']} |" for r in results]
    lines.append(f"| **average** | | **{average:.2f}** | | |")
    env["overrides"] = overrides
    write_results(args.out, env, [*results, {"average_wer": round(average, 2)}], "\n".join(lines))


if __name__ == "__main__":
    main()
