"""GPU checks and paper-scale throughput, run on a lent GPU machine (CI never runs this).

    python -m benchmarks.gpu_check --data-dir .gpu_data --out benchmarks/results/gpu_check.json

1. correctness on CUDA: a tiny Mel-LLM overfit on real FSDD clips transcribes them in bf16 with SDPA, batched equals
   one-by-one, and SDPA logits match eager;
2. speed at the paper's scale: a randomly initialised Phi-4-mini-shaped backbone (3072 wide, 32 layers, 24/8 heads,
   vocab 200064) behind the `stack` and `conv` front ends, bf16 + SDPA: greedy ASR RTFx at several batch sizes
   (a fixed number of new tokens, since random weights never emit EOS), and one LoRA (r=320, alpha=640) training
   step's throughput with gradient checkpointing. Speed does not depend on the weights' values.
3. against the hardware (issue 19): each batch size decodes eagerly (dynamic cache) and with a static cache, whose
   decode step transformers compiles by itself on CUDA; a decode step's time (generate with N new tokens minus
   generate with 1, over N - 1) is set against the bandwidth roofline (every weight read once a step, bf16), and the
   LoRA step's model FLOPs (4 x parameters x tokens: forward and input gradients; frozen weights get no weight
   gradients, and recomputation is not counted) against the bf16 dense peak. Peaks from the vendors' datasheets.
"""

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from modeling_mel_llm import MelLLMConfig, MelLLMForSpeechLM
from processing import load_audio
from tests.conftest import overfit, transcribe
from training.tiny import DIGIT_WORDS, build_tiny_model, build_tiny_processor


# Dense bf16 FLOP/s and memory bandwidth (bytes/s) of the lent GPUs (SXM datasheets); matched by device name.
PEAKS = {"H200": (989e12, 4.8e12), "H100": (989e12, 3.35e12)}


def device_peaks(device_name: str) -> tuple[float, float] | None:
    """(bf16 FLOP/s, bytes/s) of a known GPU, else None (the fractions are then left out)."""
    return next((peaks for key, peaks in PEAKS.items() if key in device_name), None)


def decode_step_seconds(seconds_n_tokens: float, seconds_one_token: float, new_tokens: int) -> float:
    """One decode step: what `new_tokens - 1` more tokens cost beyond the prefill's first."""
    return (seconds_n_tokens - seconds_one_token) / (new_tokens - 1)


def roofline_fraction(weight_bytes: float, bandwidth: float, step_seconds: float) -> float:
    """How close a decode step comes to reading every weight once at full bandwidth (1.0 = the roofline)."""
    return weight_bytes / bandwidth / step_seconds


def lora_mfu(parameters: int, tokens: int, step_seconds: float, peak_flops: float) -> float:
    """Model FLOPs utilisation of a LoRA step: 4 · N · tokens (forward + input gradients) over the peak."""
    return 4 * parameters * tokens / step_seconds / peak_flops


def timed(fn, repeats: int = 3) -> float:
    """Median wall seconds of `fn()` after one warm-up, with CUDA synchronised."""
    fn()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def correctness(data_dir: Path) -> dict:
    files = sorted(data_dir.glob("*.wav"))[:4]
    clips = [load_audio(str(f), 16_000) for f in files]
    texts = [DIGIT_WORDS[int(f.name.split("_")[0])] for f in files]
    processor = build_tiny_processor()
    torch.manual_seed(0)
    model = build_tiny_model(processor, "llama", "stack").cuda()
    cuda_processor = _CudaProcessor(processor)
    loss = overfit(model, cuda_processor, clips, texts)
    bf16 = model.to(torch.bfloat16)
    hyp_batched = transcribe(bf16, cuda_processor, clips)
    hyp_single = [transcribe(bf16, cuda_processor, [c])[0] for c in clips]
    inputs = cuda_processor(audio=clips, sampling_rate=16_000)
    bf16.config._attn_implementation = "eager"
    bf16.language_model.config._attn_implementation = "eager"
    with torch.no_grad():
        eager = bf16(**inputs).logits.float()
    bf16.language_model.config._attn_implementation = "sdpa"
    with torch.no_grad():
        sdpa = bf16(**inputs).logits.float()
    real = inputs["attention_mask"].bool()
    return {
        "train_loss_fp32": loss,
        "references": texts,
        "bf16_batched": hyp_batched,
        "bf16_one_by_one": hyp_single,
        "exact": hyp_batched == texts and hyp_single == texts,
        "sdpa_vs_eager_max_abs_logit_diff_bf16": float((eager[real] - sdpa[real]).abs().max()),
    }


class _CudaProcessor:
    """The processor, with its tensors moved to the GPU (the tests' helpers expect a CPU processor)."""

    def __init__(self, processor):
        self.processor = processor
        self.batch_decode = processor.batch_decode
        self.feature_extractor = processor.feature_extractor

    def __call__(self, *args, **kwargs):
        return self.processor(*args, **kwargs).to("cuda")


def paper_scale_model(frontend: str, vocab_size: int = 200_064) -> MelLLMForSpeechLM:
    text_config = {
        "model_type": "phi3",
        "vocab_size": vocab_size,
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 32,
        "num_attention_heads": 24,
        "num_key_value_heads": 8,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    }
    config = MelLLMConfig(text_config=text_config, audio_token_id=200_011, frontend=frontend)
    config._attn_implementation = "sdpa"
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = MelLLMForSpeechLM(config)
    torch.set_default_dtype(torch.float32)
    return model.eval()


def synthetic_prompt(batch: int, audio_s: float, text_tokens: int, audio_token_id: int = 200_011) -> dict:
    """Random log-mel clips of `audio_s` seconds and a prompt holding one placeholder per 80 ms patch."""
    frames = int(audio_s * 100) - 1
    patches = -(-frames // 8)
    input_ids = torch.full((batch, patches + text_tokens), 100, device="cuda")
    input_ids[:, 2 : 2 + patches] = audio_token_id
    features = torch.randn(batch, frames, 80, device="cuda", dtype=torch.bfloat16) + 8
    mask = torch.ones(batch, frames, dtype=torch.bool, device="cuda")
    return {"input_ids": input_ids, "input_features": features, "input_features_mask": mask}


def speed(frontend: str, batch_sizes: list[int], audio_s: float, new_tokens: int) -> list[dict]:
    model = paper_scale_model(frontend)
    params = model.num_parameters()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.language_model.parameters())
    peaks = device_peaks(torch.cuda.get_device_name())
    rows = []
    for batch in batch_sizes:
        kwargs = synthetic_prompt(batch, audio_s, text_tokens=12)
        for decoding, options in {"eager": {}, "static-compiled": {"cache_implementation": "static"}}.items():

            def generate(tokens, kwargs=kwargs, options=options):
                with torch.inference_mode():
                    model.generate(**kwargs, **options, do_sample=False, min_new_tokens=tokens, max_new_tokens=tokens)

            torch.cuda.reset_peak_memory_stats()
            seconds = timed(lambda: generate(new_tokens))
            step = decode_step_seconds(seconds, timed(lambda: generate(1)), new_tokens)
            row = {"frontend": frontend, "decoding": decoding, "params": params, "batch": batch}
            row |= {"audio_s_per_clip": audio_s, "new_tokens": new_tokens, "wall_s": seconds}
            row |= {"rtfx": batch * audio_s / seconds, "decode_step_ms": step * 1000}
            row |= {"decode_tokens_per_s": batch / step, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
            if peaks is not None:
                row["bandwidth_roofline_fraction"] = roofline_fraction(weight_bytes, peaks[1], step)
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
    return rows


def lora_step(batch: int, audio_s: float, transcript_tokens: int = 40) -> dict:
    from peft import LoraConfig, get_peft_model

    model = paper_scale_model("conv")
    model.train()
    model.activation_checkpointing_enable()
    lora = LoraConfig(
        r=320,
        lora_alpha=640,
        lora_dropout=0.01,
        target_modules=r".*language_model.*\.(qkv_proj|o_proj|gate_up_proj|down_proj)",
        modules_to_save=["audio_frontend", "multi_modal_projector"],
    )
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    inputs = synthetic_prompt(batch, audio_s, text_tokens=12 + transcript_tokens)
    length = inputs["input_ids"].shape[1]
    labels = inputs["input_ids"].clone()
    labels[:, : length - transcript_tokens] = -100
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step():
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    torch.cuda.reset_peak_memory_stats()
    seconds = timed(step, repeats=3)
    peaks = device_peaks(torch.cuda.get_device_name())
    parameters = sum(p.numel() for p in model.parameters())
    return {
        "batch": batch,
        "audio_s_per_clip": audio_s,
        "sequence_tokens": length,
        "trainable_params": trainable,
        "step_s": seconds,
        "tokens_per_s": batch * length / seconds,
        "audio_s_per_s": batch * audio_s / seconds,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "mfu": None if peaks is None else lora_mfu(parameters, batch * length, seconds, peaks[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=".gpu_data")
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    parser.add_argument("--audio-s", type=float, default=10.0)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    report = {
        "command": " ".join(sys.argv),
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
    }
    import transformers

    report["transformers"] = transformers.__version__
    report["correctness"] = correctness(Path(args.data_dir))
    print(json.dumps(report["correctness"]), flush=True)
    report["generate"] = speed("stack", [1, 8, 32], args.audio_s, args.new_tokens)
    torch.cuda.empty_cache()
    report["generate"] += speed("conv", [1, 8, 32], args.audio_s, args.new_tokens)
    torch.cuda.empty_cache()
    report["lora_train_step"] = lora_step(batch=8, audio_s=args.audio_s)
    print(json.dumps(report["lora_train_step"]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
