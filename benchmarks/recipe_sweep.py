"""Train recipe variants side by side and tabulate their held-out WER: which change to a recipe pays off.

    python -m benchmarks.recipe_sweep --sweep SWEEP.yaml --parallel 6 --out benchmarks/results/SWEEP.json

(The sweeps that ran on lent GPUs are recorded in docs/RESULTS.md with their JSON in benchmarks/results/; their
files are at commit 49b21fd.)

A sweep file names a base recipe, arguments every run shares, and one argument list per variant:

    config: training/configs/tiny_cpu.yaml
    common: ["--max_steps=7000"]
    variants:
      base: []
      deeper: ["--tiny_num_layers=8"]

Each variant is an ordinary `python -m training.train` run in its own process (`--parallel` at a time, each limited
to `--threads` CPU threads), written to `<runs>/<name>`; a run whose folder already holds its score is reused,
so an interrupted sweep resumes. Every synthetic corpus the runs need is built first, once, so that parallel runs
never race to fill the same cache. The JSON is rewritten after every finished run.

TTS recipes have no ASR report to read. With `--tts-judge ASR_MODEL_DIR` each trained run is then scored by
`benchmarks.tts_eval` on its corpus's held-out sentences (transcribed by that judge; `--tts-eval-args` passes more
options, e.g. "--max-samples 50 --temperature 0.5"), and the table shows the WER/CER of its speech.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from benchmarks.common import REPO_ROOT, environment, write_results
from training.arguments import parse_config
from training.corpus.corpora import synthetic_manifests


def load_sweep(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """`(argv shared by every run, {variant: its own argv})` from a sweep file."""
    sweep = yaml.safe_load(path.read_text())
    if not sweep.get("variants"):
        raise ValueError(f"{path} lists no variants.")
    shared = ["--config", str(sweep["config"]), *sweep.get("common", [])]
    return shared, {name: list(argv or []) for name, argv in sweep["variants"].items()}


def prebuild_corpora(argvs: list[list[str]]) -> list[Path | None]:
    """
    Synthesise every distinct corpus the runs will read (a no-op for cached ones), one after another, and return
    each run's held-out manifest: the synthetic corpus's eval split, else the recipe's `eval_manifest` (None when it
    has none).
    """
    manifests = []
    for argv in argvs:
        _, data_args, training_args = parse_config(argv)
        if data_args.corpus == "synthetic":
            manifests.append(synthetic_manifests(data_args, training_args.seed)[1])
        else:
            manifests.append(Path(data_args.eval_manifest) if data_args.eval_manifest else None)
    return manifests


TTS_SCORE = "tts_eval.json"


def score_file(folder: Path, tts: bool) -> Path:
    """Where a finished run keeps its score: the training's ASR report, or the TTS benchmark's JSON."""
    return folder / (TTS_SCORE if tts else "report.json")


def summarize(name: str, argv: list[str], folder: Path, returncode: int | None, seconds: float | None) -> dict:
    """One table row: the run's WER/CER (per set, or of its speech) and training time, or why it has none."""
    row = {"variant": name, "args": argv, "returncode": returncode, "wall_s": seconds}
    report, tts_score, run_config = folder / "report.json", folder / TTS_SCORE, folder / "run_config.yaml"
    if tts_score.is_file():
        result = json.loads(tts_score.read_text())["results"][0]
        row["wer"] = result["wer"]
        row["sets"] = {"tts": {"wer": result["wer"], "cer": result["cer"]}}
        row["tts"] = {key: result[key] for key in ("mel_l1", "mcd_db", "stop_rate", "asr_on_vocoded_references")}
    elif report.is_file():
        results = json.loads(report.read_text())
        row["wer"] = results["average_wer"]
        row["sets"] = {set_name: {"wer": s["wer"], "cer": s["cer"]} for set_name, s in results["sets"].items()}
    if run_config.is_file():
        row["train_runtime_s"] = yaml.safe_load(run_config.read_text()).get("train_runtime_s")
    return row


def table(rows: list[dict]) -> str:
    lines = ["| variant | args | WER % | CER % | train s |", "|---|---|---:|---:|---:|"]
    for row in rows:
        cer = next(iter(row.get("sets", {}).values()), {}).get("cer", "—")
        lines.append(
            f"| {row['variant']} | `{' '.join(row['args']) or '(base)'}` | {row.get('wer', 'failed')} | {cer} | "
            f"{row.get('train_runtime_s', '—')} |"
        )
    return "\n".join(lines)


def run_sweep(
    variants: dict[str, list[str]],
    commands: dict[str, list[list[str]]],
    runs_root: Path,
    parallel: int,
    threads: int,
    tts: bool,
    on_row,
):
    """
    Run each variant's commands (training, then its scoring if any) one after another in one of `parallel` slots;
    call `on_row(rows)` whenever a variant finishes. A failed command ends its variant.
    """
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    pending = list(commands.items())
    running: dict[str, tuple[subprocess.Popen, float, object, list[list[str]]]] = {}
    rows: dict[str, dict] = {}

    def start(name: str, steps: list[list[str]], started: float, mode: str) -> None:
        log = open(runs_root / name / "train.log", mode)  # noqa: SIM115 (closed when the process ends)
        process = subprocess.Popen(steps[0], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        running[name] = (process, started, log, steps[1:])

    while pending or running:
        while pending and len(running) < parallel:
            name, steps = pending.pop(0)
            folder = runs_root / name
            if score_file(folder, tts).is_file():
                rows[name] = summarize(name, variants[name], folder, 0, None)
                continue
            folder.mkdir(parents=True, exist_ok=True)
            start(name, steps, time.perf_counter(), "w")
            print(f"started {name}: {' '.join(variants[name]) or '(base)'}", flush=True)
        time.sleep(2)
        for name, (process, started, log, remaining) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[name]
            if process.returncode == 0 and remaining:
                start(name, remaining, started, "a")
                continue
            rows[name] = summarize(
                name, variants[name], runs_root / name, process.returncode, time.perf_counter() - started
            )
            print(f"finished {name}: exit {process.returncode}, WER {rows[name].get('wer', '—')}", flush=True)
            on_row([rows[n] for n in variants if n in rows])
    return [rows[n] for n in variants]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", type=Path, required=True, help="YAML: config, common, variants")
    parser.add_argument("--runs", type=Path, default=Path("runs/recipe_sweep"), help="one folder per variant")
    parser.add_argument("--parallel", type=int, default=1, help="training processes at a time")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per training process")
    parser.add_argument("--only", nargs="*", default=None, help="run just these variants")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/recipe_sweep.json"))
    parser.add_argument("--tts-judge", type=Path, help="score TTS runs' speech with this ASR model (tts_eval)")
    parser.add_argument("--tts-eval-args", default="", help="more benchmarks.tts_eval options, one string")
    args = parser.parse_args(argv)

    shared, variants = load_sweep(args.sweep)
    if args.only:
        unknown = set(args.only) - set(variants)
        if unknown:
            parser.error(f"unknown variants {sorted(unknown)}; the sweep has {sorted(variants)}")
        variants = {name: variants[name] for name in args.only}
    started = time.perf_counter()
    manifests = prebuild_corpora([[*shared, *argv] for argv in variants.values()])
    print(f"corpora ready in {time.perf_counter() - started:.0f} s", flush=True)
    env = environment("benchmarks.recipe_sweep", args)
    env["shared_args"] = shared
    env["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"

    commands = {}
    for (name, argv), manifest in zip(variants.items(), manifests, strict=True):
        folder = args.runs / name
        commands[name] = [[sys.executable, "-m", "training.train", *shared, *argv, f"--output_dir={folder}"]]
        if args.tts_judge:
            if manifest is None:
                parser.error(
                    f"variant {name} has no held-out sentences for the TTS judge (synthetic or eval_manifest)"
                )
            commands[name].append(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.tts_eval",
                    "--model",
                    str(folder),
                    "--asr-model",
                    str(args.tts_judge),
                    "--manifest",
                    str(manifest),
                    "--num-examples",
                    "0",
                    "--out",
                    str(score_file(folder, tts=True)),
                    *args.tts_eval_args.split(),
                ]
            )

    def write(rows: list[dict]) -> None:
        write_results(args.out, env, rows, table(rows))

    rows = run_sweep(variants, commands, args.runs, args.parallel, args.threads, bool(args.tts_judge), write)
    write(rows)
    return rows


if __name__ == "__main__":
    main()
