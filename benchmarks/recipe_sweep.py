"""Train recipe variants side by side and tabulate their held-out WER: which change to a recipe pays off.

    python -m benchmarks.recipe_sweep --sweep benchmarks/configs/recipe_sweep_gpu.yaml --parallel 6 \
        --out benchmarks/results/recipe_sweep_gpu.json

A sweep file names a base recipe, arguments every run shares, and one argument list per variant:

    config: training/configs/tiny_cpu.yaml
    common: ["--max_steps=7000"]
    variants:
      base: []
      deeper: ["--tiny_num_layers=8"]

Each variant is an ordinary `python -m training.train` run in its own process (`--parallel` at a time, each limited
to `--threads` CPU threads), written to `<runs>/<name>`; a run whose folder already holds `report.json` is reused,
so an interrupted sweep resumes. Every synthetic corpus the runs need is built first, once, so that parallel runs
never race to fill the same cache. The JSON is rewritten after every finished run.
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
from training.synthetic_corpus import build_corpus


def load_sweep(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """`(argv shared by every run, {variant: its own argv})` from a sweep file."""
    sweep = yaml.safe_load(path.read_text())
    if not sweep.get("variants"):
        raise ValueError(f"{path} lists no variants.")
    shared = ["--config", str(sweep["config"]), *sweep.get("common", [])]
    return shared, {name: list(argv or []) for name, argv in sweep["variants"].items()}


def prebuild_corpora(argvs: list[list[str]]) -> None:
    """Synthesise every distinct corpus the runs will read (a no-op for cached ones and for other corpora)."""
    wanted = set()
    for argv in argvs:
        _, data_args, training_args = parse_config(argv)
        if data_args.corpus == "synthetic":
            wanted.add(
                (
                    data_args.synthetic_num_train,
                    data_args.synthetic_num_eval,
                    training_args.seed,
                    data_args.synthetic_voice,
                )
            )
    for num_train, num_eval, seed, voice in sorted(wanted, key=str):
        build_corpus(num_train=num_train, num_eval=num_eval, seed=seed, voice=voice)


def summarize(name: str, argv: list[str], folder: Path, returncode: int | None, seconds: float | None) -> dict:
    """One table row: the run's WER/CER per set and training time, or why it has none."""
    row = {"variant": name, "args": argv, "returncode": returncode, "wall_s": seconds}
    report, run_config = folder / "report.json", folder / "run_config.yaml"
    if report.is_file():
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


def run_sweep(shared: list[str], variants: dict[str, list[str]], runs_root: Path, parallel: int, threads: int, on_row):
    """Launch up to `parallel` training processes at a time; call `on_row(rows)` whenever one finishes."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    pending = list(variants.items())
    running: dict[str, tuple[subprocess.Popen, float, object]] = {}
    rows: dict[str, dict] = {}
    while pending or running:
        while pending and len(running) < parallel:
            name, argv = pending.pop(0)
            folder = runs_root / name
            if (folder / "report.json").is_file():
                rows[name] = summarize(name, argv, folder, 0, None)
                continue
            folder.mkdir(parents=True, exist_ok=True)
            log = open(folder / "train.log", "w")  # noqa: SIM115 (closed when the process ends)
            command = [sys.executable, "-m", "training.train", *shared, *argv, f"--output_dir={folder}"]
            process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            running[name] = (process, time.perf_counter(), log)
            print(f"started {name}: {' '.join(argv) or '(base)'}", flush=True)
        time.sleep(2)
        for name, (process, started, log) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[name]
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
    args = parser.parse_args(argv)

    shared, variants = load_sweep(args.sweep)
    if args.only:
        unknown = set(args.only) - set(variants)
        if unknown:
            parser.error(f"unknown variants {sorted(unknown)}; the sweep has {sorted(variants)}")
        variants = {name: variants[name] for name in args.only}
    started = time.perf_counter()
    prebuild_corpora([[*shared, *argv] for argv in variants.values()])
    print(f"corpora ready in {time.perf_counter() - started:.0f} s", flush=True)
    env = environment("benchmarks.recipe_sweep", args)
    env["shared_args"] = shared
    env["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"

    def write(rows: list[dict]) -> None:
        write_results(args.out, env, rows, table(rows))

    rows = run_sweep(shared, variants, args.runs, args.parallel, args.threads, write)
    write(rows)
    return rows


if __name__ == "__main__":
    main()
