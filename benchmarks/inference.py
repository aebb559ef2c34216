"""Greedy-ASR throughput (RTFx) and peak memory: tiny Mel-LLMs vs an equal-size random Whisper, on real FSDD audio.

Launch from the repository root (CPU default takes about a minute; GPU: add `--device cuda --dtype bfloat16`):

    .venv/bin/python -m benchmarks.inference [--out benchmarks/results/inference.json] [--num-clips 32]

`--size whisper-tiny` (or `smollm2`) runs `benchmarks.equal_size` instead: a Mel-LLM of Whisper tiny.en's parameter
count (or SmolLM2-135M's shape) beside HF Whisper tiny.en and faster-whisper int8 on 5–20 s speech (issue 19).

RTFx follows the Open ASR leaderboard: total audio seconds / total wall seconds, timing feature extraction,
`generate` and decoding, after one untimed warm-up batch. The weights are random, so every model is forced to emit
exactly `--max-new-tokens` tokens. Each (model, batch size) runs in a fresh subprocess (`--single`), because the
RSS high-water mark is per process.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import transformers
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

from benchmarks import common, equal_size
from benchmarks.common import environment as common_environment
from benchmarks.common import write_results
from processing import load_audio
from training.corpus.fsdd import fsdd_utterances
from training.progress import announce, progress
from training.tiny import FAMILIES, build_tiny_model, build_tiny_processor


REPO_ROOT = common.REPO_ROOT
RATE = 16_000
MIB = 1024 * 1024
RESULT_PREFIX = "RESULT "
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "inference.json"
SIZE_HELP = "toy: the tiny models below on FSDD; whisper-tiny or smollm2: benchmarks.equal_size at that backbone size"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--size", choices=["toy", *equal_size.SIZES], default="toy", help=SIZE_HELP)
    parser.add_argument("--audio", type=Path, help="with --size whisper-tiny|smollm2: a folder of real clips")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    sizes = {"hidden-size": 64, "num-layers": 2, "num-heads": 4, "num-kv-heads": 2}
    for name, default in {"num-clips": 32, "max-new-tokens": 8, "seed": 0, **sizes}.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--threads", type=int, default=0, help="torch threads, 0: default; 1 is steadier if shared")
    parser.add_argument("--single", help="internal: run one JSON-encoded configuration and print its result")
    return parser.parse_args(argv)


def load_clips(num_clips: int) -> list[np.ndarray]:
    """`num_clips` FSDD test clips spread over digits and speakers (cycled if fewer), resampled 8 → 16 kHz; FSDD
    from `$MEL_LLM_FSDD_DIR` (training/corpus/fsdd.py)."""
    rows = [u for u in fsdd_utterances() if u.metadata["fsdd_split"] == "test"]
    step = max(1, len(rows) // num_clips)
    return [load_audio(str(rows[(i * step) % len(rows)].audio_path), RATE) for i in range(num_clips)]


def configurations(batch_sizes: list[int]) -> list[dict]:
    """Every Mel-LLM family with the stack front end, llama with conv, and the Whisper peer, per batch size."""
    models = [{"model": "mel-llm", "family": family, "frontend": "stack"} for family in FAMILIES]
    models += [
        {"model": "mel-llm", "family": "llama", "frontend": "conv"},
        {"model": "whisper", "frontend": "30 s pad"},
    ]
    return [{**model, "batch": batch} for model in models for batch in batch_sizes]


def build_mel_llm(args: argparse.Namespace, family: str, frontend: str) -> tuple[torch.nn.Module, Any]:
    sizes = {"hidden_size": args.hidden_size, "num_layers": args.num_layers, "num_heads": args.num_heads}
    processor = build_tiny_processor()
    model = build_tiny_model(processor, family, frontend, num_kv_heads=args.num_kv_heads, **sizes)
    return model, processor


def whisper_config(d_model: int, layers: int, heads: int, tokenizer: Any) -> WhisperConfig:
    """A Whisper shaped like the tiny backbones (FFN = 2·d, same vocabulary); nothing comes from the Hub."""
    per_side = {"layers": layers, "attention_heads": heads, "ffn_dim": 2 * d_model}
    ids = {f"{name}_token_id": getattr(tokenizer, f"{name}_token_id") for name in ("bos", "eos", "pad")}
    return WhisperConfig(
        vocab_size=len(tokenizer),
        d_model=d_model,
        **{f"{side}_{key}": value for side in ("encoder", "decoder") for key, value in per_side.items()},
        **ids,
        decoder_start_token_id=tokenizer.bos_token_id,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )


def equal_size_whisper(target: int, args: argparse.Namespace, tokenizer: Any) -> WhisperConfig:
    """The (d_model, layers) whose total parameter count is closest to `target`; candidates are built on meta."""
    best: tuple[int, WhisperConfig] | None = None
    for layers in range(1, args.num_layers + 1):
        d_model = 2 * args.num_heads
        while True:
            config = whisper_config(d_model, layers, args.num_heads, tokenizer)
            with torch.device("meta"):
                count = WhisperForConditionalGeneration(config).num_parameters()
            if best is None or abs(count - target) < abs(best[0] - target):
                best = (count, config)
            if count > target:
                break
            d_model += 2 * args.num_heads
    return best[1]


def sync(device: str) -> None:
    """CUDA runs asynchronously: wait for queued kernels so the timer brackets the real work."""
    if device == "cuda":
        torch.cuda.synchronize()


def mel_llm_runner(args: argparse.Namespace, config: dict) -> tuple[torch.nn.Module, Callable, dict]:
    """A Mel-LLM and its transcribe(batch): processor → generate → decode, the leaderboard's timed span."""
    model, processor = build_mel_llm(args, config["family"], config["frontend"])
    model.to(args.device, getattr(torch, args.dtype)).eval()
    device, n = args.device, args.max_new_tokens

    def transcribe(batch: list[np.ndarray]) -> list[str]:
        inputs = processor(audio=batch, sampling_rate=RATE).to(device)
        out = model.generate(**inputs, do_sample=False, min_new_tokens=n, max_new_tokens=n)
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        assert new_tokens.shape[1] == n, f"generated {new_tokens.shape[1]} tokens, expected {n}"
        return processor.batch_decode(new_tokens, skip_special_tokens=True)

    return model, transcribe, {}


def whisper_runner(args: argparse.Namespace, config: dict) -> tuple[torch.nn.Module, Callable, dict]:
    """A random Whisper sized like the llama/stack Mel-LLM (counted on meta, so it costs no RSS here)."""
    with torch.device("meta"):
        reference, processor = build_mel_llm(args, "llama", "stack")
    tokenizer, target = processor.tokenizer, reference.num_parameters()
    device, dtype, n = args.device, getattr(torch, args.dtype), args.max_new_tokens
    whisper_cfg = equal_size_whisper(target, args, tokenizer)
    model = WhisperForConditionalGeneration(whisper_cfg).to(device, dtype).eval()
    feature_extractor = WhisperFeatureExtractor()  # defaults: 80 mel bins, pads every clip to 30 s

    def transcribe(batch: list[np.ndarray]) -> list[str]:
        features = feature_extractor(batch, sampling_rate=RATE, return_tensors="pt").input_features
        out = model.generate(features.to(device, dtype), do_sample=False, min_new_tokens=n, max_new_tokens=n)
        return tokenizer.batch_decode(out, skip_special_tokens=True)  # Whisper returns only the new tokens

    dims = {
        "d_model": whisper_cfg.d_model,
        "layers": whisper_cfg.conformer_layers,
        "ffn": whisper_cfg.conformer_ffn_dim,
    }
    return model, transcribe, {"reference_mel_llm_params": target, **dims}


def run_single(args: argparse.Namespace, config: dict) -> dict:
    """Time greedy transcription of all clips at one batch size; runs in its own process for a clean peak RSS."""
    transformers.logging.set_verbosity_error()  # the forced-length and no-Hub-config notices are expected
    device = args.device
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    clips = load_clips(args.num_clips)
    torch.manual_seed(args.seed)
    runner = whisper_runner if config["model"] == "whisper" else mel_llm_runner
    model, transcribe, extra = runner(args, config)
    size = config["batch"]
    batches = [clips[i : i + size] for i in range(0, len(clips), size)]
    with torch.inference_mode():
        transcribe(batches[0])  # warm-up, untimed
        sync(device)
        start = time.perf_counter()
        for batch in batches:
            transcribe(batch)
        sync(device)
        wall = time.perf_counter() - start
    audio_s = sum(len(clip) for clip in clips) / RATE
    return {
        **config,
        **extra,
        "params": model.num_parameters(),
        "trainable_params": model.num_parameters(only_trainable=True),
        "num_clips": len(clips),
        "audio_s": audio_s,
        "wall_s": wall,
        "rtfx": audio_s / wall,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # ru_maxrss is KiB on Linux
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / MIB if device == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m": os.getloadavg()[0],  # other processes on the machine skew CPU timings; this shows how much
    }


def run_in_subprocess(config: dict) -> dict:
    """Re-invoke this module with `--single` so each configuration's peak RSS is measured in isolation."""
    command = [sys.executable, "-m", "benchmarks.inference", *sys.argv[1:], "--single", json.dumps(config)]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{config} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1].removeprefix(RESULT_PREFIX))


def environment(args: argparse.Namespace) -> dict:
    cuda = args.device == "cuda" and torch.cuda.is_available()
    env = common_environment("benchmarks.inference", args, skip=("single",))
    return {**env, "device_name": torch.cuda.get_device_name() if cuda else "cpu"}


def markdown_table(results: list[dict], env: dict) -> str:
    """The summary; its footer states the forced generation length, without which the RTFx are not comparable."""
    cuda = env["device"] == "cuda"
    columns = ["model", "frontend", "params", "batch", "audio s", "wall s", "RTFx", "peak RSS MiB"]
    lines = ["| " + " | ".join(columns + ["CUDA peak MiB"] * cuda) + " |", "|---" * (len(columns) + cuda) + "|"]
    for r in results:
        name = "whisper" if r["model"] == "whisper" else f"mel-llm/{r['family']}"
        cells = [name, r["frontend"], f"{r['params']:,}", r["batch"], f"{r['audio_s']:.1f}", f"{r['wall_s']:.2f}"]
        cells += [f"{r['rtfx']:.1f}", f"{r['peak_rss_mib']:.0f}"] + ([f"{r['cuda_peak_mib']:.0f}"] if cuda else [])
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    n = env["max_new_tokens"]
    lines.append(
        f"\nGreedy decoding forced to exactly {n} new tokens per clip (min_new_tokens = max_new_tokens = {n}; random "
        f"weights). {env['num_clips']} FSDD test clips at 16 kHz; timing covers feature extraction + generate + "
        f"decoding, one warm-up batch excluded. {env['device_name']}, {env['dtype']}, {env['torch_threads']} torch "
        f"threads, load average {env['load_avg_at_start'][0]:.1f} at start. Whisper pads every clip to 30 s (its real "
        "cost); its params include the frozen 1500 x d_model sinusoidal encoder positions."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.size != "toy":  # the sizes people deploy: the equal-size benchmark beside Whisper tiny.en
        passed = ["--size", args.size, "--batch-sizes", *map(str, args.batch_sizes), "--seed", str(args.seed)]
        passed += ["--threads", str(args.threads or torch.get_num_threads())]
        passed += [] if args.out == DEFAULT_OUT else ["--out", str(args.out)]
        equal_size.main(passed + (["--audio", str(args.audio)] if args.audio else []))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.single:
        print(RESULT_PREFIX + json.dumps(run_single(args, json.loads(args.single))), flush=True)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda requested but CUDA is not available")
    env = environment(args)
    results = []
    configs = configurations(args.batch_sizes)
    announce(
        f"Timing {len(configs)} (model, batch size) configurations, each in its own process (about a minute on CPU)"
    )
    for config in progress(configs, len(configs), "inference configurations"):
        results.append(run_in_subprocess(config))
        print(f"done {config}: RTFx {results[-1]['rtfx']:.1f}", file=sys.stderr, flush=True)
    whisper = next(r for r in results if r["model"] == "whisper")
    print(
        f"Parameters: Mel-LLM llama/stack {whisper['reference_mel_llm_params']:,} vs Whisper "
        f"{whisper['params']:,} (d_model {whisper['d_model']}, {whisper['layers']}+{whisper['layers']} layers, "
        f"FFN {whisper['ffn']}; {whisper['trainable_params']:,} trainable)\n"
    )
    write_results(args.out, env, results, markdown_table(results, env))


if __name__ == "__main__":
    main()
