"""Speed of speaking (issue 19): `generate_speech` on a batch, eager and with the backbone's decoder compiled.

Launch from the repository root (the peers extra gives Whisper's tokenizer; about 3 minutes on 2 cores, most of it
compiling):

    .venv/bin/python -m benchmarks.tts_speed [--size whisper-tiny|smollm2] [--batch-sizes 1 8] [--frames 300]

The model is `benchmarks.equal_size`'s Mel-LLM of `--size` with a TTS head (random weights), so every clip is held
to exactly `--frames` 10 ms frames (`min_new_frames = max_new_frames`) and every system does the same work.
Synthesis RTFx = seconds of speech (mel frames; no vocoder) / wall seconds, after one untimed warm-up call per batch
size (which compiles). `compiled`: `model.get_decoder().forward = torch.compile(..., dynamic=True)`; its mel
frames are compared with eager's.
"""

import argparse
import copy
import time
from pathlib import Path

import torch

from benchmarks.common import REPO_ROOT, environment, write_results
from benchmarks.equal_size import SIZES, whisper_sized_mel_llm
from benchmarks.whisper_ct2 import load_whisper_from_ct2
from training.corpus.open_text import load_open_sentences
from training.progress import announce


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="whisper-tiny")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--frames", type=int, default=300, help="10 ms frames each clip is held to")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per system and batch size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "tts_speed.json")
    return parser.parse_args(argv)


def speak(model, inputs, frames: int) -> torch.Tensor:
    """The batch's log-mel, every clip held to `frames` frames; seeded, so eager and compiled draw the same noise."""
    with torch.inference_mode():
        return model.generate_speech(**inputs, min_new_frames=frames, max_new_frames=frames, seed=0).mel_features


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    announce(f"TTS speed: a {args.size} Mel-LLM speaking batches of {args.batch_sizes}, eager then compiled")
    _, tokenizer = load_whisper_from_ct2()
    eager, processor = whisper_sized_mel_llm(tokenizer, args.size, tts_head=True)
    compiled = copy.deepcopy(eager)
    decoder = compiled.get_decoder()
    decoder.forward = torch.compile(decoder.forward, dynamic=True)
    sentences = load_open_sentences()
    results = []
    for batch in args.batch_sizes:
        inputs = processor.tts_inputs(sentences[:batch])
        mels = {}
        for name, model in {"eager": eager, "compiled": compiled}.items():
            began = time.perf_counter()
            speak(model, inputs, args.frames)
            warmup_s = time.perf_counter() - began
            began = time.perf_counter()
            for _ in range(args.repeats):
                mels[name] = speak(model, inputs, args.frames)
            seconds = (time.perf_counter() - began) / args.repeats
            row = {"system": name, "batch": batch, "rtfx": round(batch * args.frames / 100 / seconds, 2)}
            row |= {"seconds_per_call": round(seconds, 3), "warmup_s": round(warmup_s, 1)}
            if name == "compiled":
                row["max_abs_diff_vs_eager"] = float((mels["compiled"] - mels["eager"]).abs().max())
            results.append(row)
    env = environment("benchmarks.tts_speed", args) | {"parameters": eager.num_parameters()}
    lines = ["| system | batch | synthesis RTFx | s per call | first call s |", "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r['system']} | {r['batch']} | {r['rtfx']:.1f} | {r['seconds_per_call']:.3f} | {r['warmup_s']:.1f} |"
        for r in results
    ]
    lines.append(f"\n{args.size} backbone, {env['parameters']:,} parameters, {args.frames} frames per clip")
    write_results(args.out, env, results, "\n".join(lines))
    return results


if __name__ == "__main__":
    main()
