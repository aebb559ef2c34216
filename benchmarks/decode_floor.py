"""Where a batch-1 decode step's time goes at Whisper tiny.en's size, and the floor that memory bandwidth sets.

Launch from the repository root (peers extra; about a minute on 2 cores):

    .venv/bin/python -m benchmarks.decode_floor [--size whisper-tiny] [--steps 50] [--threads 2]

For `benchmarks.equal_size`'s fp32 Mel-LLM and transformers' Whisper tiny.en, on one espeak-ng clip of about 15 s:
- ms per decode step (one token, batch 1, dynamic cache), the model's `forward` alone, and Whisper's encoder pass;
- of the Mel-LLM's step, the ms inside its linear layers (torch.profiler's matrix-multiply kernels);
- the weights a step must read (every backbone linear layer, the LM head included) and this machine's streaming
  bandwidth for that many bytes (a matrix-vector product over a matrix of that size), hence the floor: the ms a
  step needs if it did nothing but read its weights once.
Whisper's default greedy `generate` on the clip, against the Mel-LLM's `generate` forced to the same T tokens, and
against a Mel-LLM at that floor (prefill + T · floor): the most an fp32 Mel-LLM of this size can gain on this CPU.
"""

import argparse
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile
from transformers import DynamicCache, WhisperFeatureExtractor

from benchmarks.common import REPO_ROOT, environment, write_results
from benchmarks.equal_size import RATE, SIZES, joined_speech, whisper_sized_mel_llm
from benchmarks.whisper_ct2 import END_OF_TEXT, load_whisper_from_ct2
from training.corpus.open_text import load_open_sentences
from training.corpus.synthetic_speech import EspeakSynthesizer


MATMUL_KERNELS = ("aten::mm", "aten::addmm", "aten::bmm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="whisper-tiny")
    parser.add_argument("--steps", type=int, default=50, help="decode steps timed per model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "decode_floor.json")
    return parser.parse_args(argv)


def fifteen_second_clip(seed: int) -> np.ndarray:
    """Open-text sentences spoken by espeak-ng, joined without gaps until the clip lasts about 15 s."""
    rng, sentences = random.Random(seed), load_open_sentences()
    return joined_speech(rng, EspeakSynthesizer(), sentences, 15.0, limit_s=float("inf"), gap_s=0.0)


def per_call_ms(call, repeats: int) -> float:
    call()
    began = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - began) / repeats * 1000


def mel_llm_step(model, processor, clip: np.ndarray, steps: int, tokens: int) -> dict:
    """Prefill ms, per decode step wall ms and ms in matrix multiplies, and `generate` ms for `tokens` tokens."""
    inputs = processor([clip], sampling_rate=RATE, return_tensors="pt")
    length = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        forced = {"min_new_tokens": tokens, "max_new_tokens": tokens}
        generate_ms = per_call_ms(lambda: model.generate(**inputs, **forced), 3)
        prefill_ms = per_call_ms(lambda: model(**inputs, logits_to_keep=1), 3)
        cache = DynamicCache(config=model.config.text_config)
        model(**inputs, past_key_values=cache, use_cache=True, logits_to_keep=1)
        token, mask = torch.tensor([[100]]), torch.ones(1, length + 1, dtype=torch.long)

        def step():
            model(input_ids=token, attention_mask=mask, position_ids=torch.tensor([[length]]), past_key_values=cache)
            cache.crop(-1)  # back to the prompt: every timed step sees the same cache

        step_ms = per_call_ms(step, steps)
        with profile(activities=[ProfilerActivity.CPU]) as trace:
            for _ in range(steps):
                step()
    matmul_us = sum(e.self_cpu_time_total for e in trace.key_averages() if e.key in MATMUL_KERNELS)
    return {
        "prefill_ms": prefill_ms,
        "step_ms": step_ms,
        "matmul_ms": matmul_us / 1000 / steps,
        "generate_ms": generate_ms,
    }


def whisper_step(whisper, clip: np.ndarray, steps: int) -> dict:
    """Encoder ms (30 s padded, as Whisper always reads), per decode step ms, and default greedy `generate` ms and
    token count on the clip."""
    features = WhisperFeatureExtractor()([clip], sampling_rate=RATE, return_tensors="pt").input_features
    with torch.inference_mode():
        encoder_ms = per_call_ms(lambda: whisper.model.encoder(features), 3)
        encoded = whisper.model.encoder(features)
        generate_ms = per_call_ms(lambda: whisper.generate(features), 3)
        tokens = [t for t in whisper.generate(features)[0].tolist() if t < END_OF_TEXT]
        prompt = torch.tensor([whisper.generation_config.decoder_start_token_id]).view(1, 1)
        out = whisper(encoder_outputs=encoded, decoder_input_ids=prompt, use_cache=True)
        cache = out.past_key_values

        def step():
            whisper(encoder_outputs=encoded, decoder_input_ids=torch.tensor([[100]]), past_key_values=cache)
            cache.crop(-1)

        step_ms = per_call_ms(step, steps)
    return {"encoder_ms": encoder_ms, "step_ms": step_ms, "tokens": len(tokens), "generate_ms": generate_ms}


def streaming_floor_ms(model) -> tuple[float, float]:
    """(MB of weights a decode step reads, ms to stream them once): a matrix-vector product over that many floats."""
    linears = {id(m.weight): m.weight for m in model.language_model.modules() if isinstance(m, torch.nn.Linear)}
    count = sum(w.numel() for w in linears.values())
    matrix, vector = torch.randn(count // 384, 384), torch.randn(1, 384)
    return count * 4 / 1e6, per_call_ms(lambda: vector @ matrix.T, 20)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    clip = fifteen_second_clip(args.seed)
    whisper, tokenizer = load_whisper_from_ct2()
    mel_llm, processor = whisper_sized_mel_llm(tokenizer, args.size)
    peer = whisper_step(whisper, clip, args.steps)
    tokens = peer["tokens"]
    mel = mel_llm_step(mel_llm, processor, clip, args.steps, tokens)
    weights_mb, floor_ms = streaming_floor_ms(mel_llm)
    results = [
        {"system": "mel-llm fp32", "step_ms": round(mel["step_ms"], 2), "matmul_ms": round(mel["matmul_ms"], 2)}
        | {"prefill_ms": round(mel["prefill_ms"], 1), "generate_ms": round(mel["generate_ms"], 1)}
        | {"weights_mb": round(weights_mb, 1)}
        | {"floor_step_ms": round(floor_ms, 2), "bandwidth_gb_s": round(weights_mb / floor_ms, 1)},
        {"system": "whisper-hf", "step_ms": round(peer["step_ms"], 2), "encoder_ms": round(peer["encoder_ms"], 1)}
        | {"generate_ms": round(peer["generate_ms"], 1), "clip_tokens": tokens},
        {
            "system": "bound",
            "speedup_now": round(peer["generate_ms"] / mel["generate_ms"], 2),
            "speedup_at_floor": round(peer["generate_ms"] / (mel["prefill_ms"] + tokens * floor_ms), 2),
        },
    ]
    env = environment("benchmarks.decode_floor", args) | {"clip_s": round(len(clip) / RATE, 1)}
    lines = [
        "| | ms per decode step | in matrix multiplies | prefill / encoder ms | generate ms |",
        "|---|---:|---:|---:|---:|",
        f"| Mel-LLM fp32 | {mel['step_ms']:.2f} | {mel['matmul_ms']:.2f} | {mel['prefill_ms']:.1f} "
        f"| {mel['generate_ms']:.0f} |",
        f"| HF Whisper tiny.en | {peer['step_ms']:.2f} | | {peer['encoder_ms']:.1f} | {peer['generate_ms']:.0f} |",
        f"| floor: {weights_mb:.0f} MB of weights at {weights_mb / floor_ms:.1f} GB/s | {floor_ms:.2f} | | | |",
        "",
        f"{env['clip_s']} s clip, {tokens} Whisper tokens: Mel-LLM `generate` {results[2]['speedup_now']}x Whisper's "
        f"now; a Mel-LLM whose steps only read their weights would be {results[2]['speedup_at_floor']}x",
    ]
    write_results(args.out, env, results, "\n".join(lines))
    return results


if __name__ == "__main__":
    main()
