"""Speed at Whisper tiny.en's size (issue 19): an equal-size Mel-LLM beside transformers' and faster-whisper's Whisper.

Launch from the repository root (needs the peers and int8 extras, `pip install -e ".[peers,int8]"`; about 10 minutes
on 2 cores; `benchmarks.inference --size whisper-tiny|smollm2` runs the same):

    .venv/bin/python -m benchmarks.equal_size [--size whisper-tiny|smollm2] [--audio DIR] [--num-clips 25]
        [--batch-sizes 1 8] [--threads 2]

Systems, all on the same clips, interleaved batch by batch in one process, greedy:
- `whisper-hf`: transformers' Whisper tiny.en (37.8 M), rebuilt from the bundled CTranslate2 weights
  (`benchmarks.whisper_ct2`), default `generate`; its token count per batch is what every Mel-LLM must emit;
- `mel-llm`: a Llama backbone of `--size` (whisper-tiny: Whisper tiny.en's size, 384 wide, 8 layers, tied
  embeddings; smollm2: SmolLM2-135M's shape), Whisper's own tokenizer plus the audio and chat tokens, `stack` front
  end, random weights, default `generate`, forced to the batch's Whisper token count;
- `mel-llm-compiled`: the same with `model.forward = torch.compile(...)` and a static cache (its tokens are compared
  with the eager model's);
- `mel-llm-int8`: the same weights loaded through `from_pretrained(..., quantization_config=int8_config())`
  (training/tools/int8.py: torchao int8 weights and per-token int8 activations in every backbone linear layer, the
  LM head untied first so it is int8 too), compiled, static cache;
- `faster-whisper-int8`: Whisper tiny.en on CTranslate2 int8 (batch 1 only: its transcribe takes one clip), in a
  worker process of its own and timed there (in this process CTranslate2 would slow the torch systems ~1.8x).
Clips: `--audio DIR` (every audio file in it), else espeak-ng sentences of the open text joined into 5–20 s clips.
RTFx = audio seconds / seconds in the system's call (features, generate, decode), after one untimed warm-up batch.
"""

import argparse
import copy
import multiprocessing
import random
import time
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaConfig, WhisperFeatureExtractor

from benchmarks.common import REPO_ROOT, environment, write_results
from benchmarks.whisper_ct2 import END_OF_TEXT, bundled_model_dir, load_whisper_from_ct2
from modeling_mel_llm import MelLLMConfig, MelLLMForSpeechLM
from processing import MelLLMProcessor, load_audio
from training.corpus.open_text import load_open_sentences
from training.corpus.synthetic_speech import EspeakSynthesizer
from training.progress import announce, progress
from training.tools.int8 import quantize_int8


RATE = 16_000
SYSTEMS = ("whisper-hf", "mel-llm", "mel-llm-compiled", "mel-llm-int8", "faster-whisper-int8")
# Backbone shapes: Whisper tiny.en's parameter count (with Whisper's vocabulary) and SmolLM2-135M's layout.
SIZES = {
    "whisper-tiny": {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 8, "num_attention_heads": 6},
    "smollm2": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9},
}
KV_HEADS = {"whisper-tiny": 6, "smollm2": 3}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="whisper-tiny", help="the Mel-LLM backbone's shape")
    parser.add_argument("--audio", type=Path, help="a folder of real clips (any rate and format soundfile reads)")
    parser.add_argument("--num-clips", type=int, default=25)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "equal_size.json")
    return parser.parse_args(argv)


def speech_clips(args: argparse.Namespace) -> list[np.ndarray]:
    """The user's clips, or espeak-ng sentences joined (0.3 s apart) until each clip lasts 5–20 s."""
    if args.audio:
        paths = sorted(p for p in args.audio.iterdir() if p.is_file())[: args.num_clips]
        return [load_audio(str(p), RATE) for p in paths]
    rng, synthesizer = random.Random(args.seed), EspeakSynthesizer()
    sentences = load_open_sentences()
    return [joined_speech(rng, synthesizer, sentences, rng.uniform(5.0, 20.0)) for _ in range(args.num_clips)]


def joined_speech(
    rng: random.Random, synthesizer, sentences: list[str], target_s: float, limit_s: float = 20.0, gap_s: float = 0.3
) -> np.ndarray:
    """Random sentences spoken by espeak-ng, `gap_s` apart, until the clip lasts `target_s` (a sentence that would
    pass `limit_s` ends it instead, unless it is the first)."""
    parts, seconds = [], 0.0
    while seconds < target_s:
        speech = synthesizer.synthesize(rng.choice(sentences), "en-us", 175, 50, 50)
        speech = load_audio({"raw": speech, "sampling_rate": synthesizer.sampling_rate}, RATE)
        if seconds + len(speech) / RATE > limit_s and parts:
            break
        parts += [speech, np.zeros(int(gap_s * RATE), dtype=np.float32)]
        seconds += len(speech) / RATE + gap_s
    return np.concatenate(parts)


def whisper_sized_mel_llm(
    tokenizer, size: str = "whisper-tiny", **config_fields
) -> tuple[MelLLMForSpeechLM, MelLLMProcessor]:
    """A random-weight Mel-LLM of backbone shape `size` (`SIZES`) with Whisper tiny.en's tokenizer; `config_fields`
    go to `MelLLMConfig` (e.g. `tts_head=True`)."""
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.eos_token = tokenizer.pad_token = tokenizer.convert_ids_to_tokens(END_OF_TEXT)
    processor = MelLLMProcessor.from_text_tokenizer(tokenizer)
    text_config = LlamaConfig(
        vocab_size=len(processor.tokenizer),
        **SIZES[size],
        num_key_value_heads=KV_HEADS[size],
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=END_OF_TEXT,
        pad_token_id=END_OF_TEXT,
        bos_token_id=END_OF_TEXT,
    )
    torch.manual_seed(0)
    config = MelLLMConfig(text_config=text_config, audio_token_id=processor.audio_token_id, **config_fields)
    model = MelLLMForSpeechLM(config).eval()
    model.generation_config.eos_token_id = model.generation_config.pad_token_id = END_OF_TEXT
    return model, processor


def timed(run):
    """`run(batch, count)` → (its token rows, the seconds it took)."""

    def run_timed(batch, count):
        began = time.perf_counter()
        rows = run(batch, count)
        return rows, time.perf_counter() - began

    return run_timed


def _serve_faster_whisper(connection, threads: int) -> None:
    """Worker process: transcribe each batch of clips sent, answer (token rows, seconds inside transcribe)."""
    from faster_whisper import WhisperModel

    model = WhisperModel(str(bundled_model_dir()), device="cpu", compute_type="int8", cpu_threads=threads)
    options = {"language": "en", "beam_size": 1, "temperature": 0.0, "condition_on_previous_text": False}
    options |= {"without_timestamps": True, "vad_filter": False}
    while (batch := connection.recv()) is not None:
        began = time.perf_counter()
        rows = [[t for s in model.transcribe(clip, **options)[0] for t in s.tokens] for clip in batch]
        connection.send((rows, time.perf_counter() - began))


class FasterWhisperProcess:
    """faster-whisper in its own process, called in turn like the others and timed inside the worker: loaded in
    this process, CTranslate2 slows every torch system here about 1.8x (measured; it lasts while its model lives)."""

    def __init__(self, threads: int):
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve_faster_whisper, args=(child, threads), daemon=True)
        self.process.start()

    def __call__(self, batch, _count):
        self.connection.send(batch)
        return self.connection.recv()

    def close(self) -> None:
        self.connection.send(None)
        self.process.join()


def int8_mel_llm(model: MelLLMForSpeechLM) -> MelLLMForSpeechLM:
    """`model` loaded back the way a user loads int8 (untied LM head, `int8_config`), its forward compiled."""
    quantized = quantize_int8(copy.deepcopy(model)).eval()
    quantized.generation_config = copy.deepcopy(model.generation_config)
    quantized.forward = torch.compile(quantized.forward, dynamic=True)
    return quantized


def runners(args: argparse.Namespace) -> tuple[dict, dict]:
    """Per system: batch of clips (+ the batch's Whisper token count) → token rows; and each system's size."""
    whisper, tokenizer = load_whisper_from_ct2()
    features = WhisperFeatureExtractor()
    mel_llm, processor = whisper_sized_mel_llm(tokenizer, args.size)
    compiled = copy.deepcopy(mel_llm)
    compiled.forward = torch.compile(compiled.forward, dynamic=True)

    def run_whisper(batch, _count):
        inputs = features(batch, sampling_rate=RATE, return_tensors="pt", return_attention_mask=True)
        rows = whisper.generate(inputs.input_features, attention_mask=inputs.attention_mask)
        return [[t for t in row.tolist() if t < END_OF_TEXT] for row in rows]

    def mel_llm_runner(model, **options):
        def run(batch, count):
            inputs = processor(batch, sampling_rate=RATE, padding="longest", return_tensors="pt")
            out = model.generate(**inputs, min_new_tokens=count, max_new_tokens=count, **options)
            return out[:, inputs["input_ids"].shape[1] :].tolist()

        return run

    systems = {
        "whisper-hf": run_whisper,
        "mel-llm": mel_llm_runner(mel_llm),
        "mel-llm-compiled": mel_llm_runner(compiled, cache_implementation="static"),
    }
    if "mel-llm-int8" in args.systems:
        systems["mel-llm-int8"] = mel_llm_runner(int8_mel_llm(mel_llm), cache_implementation="static")
    systems = {name: timed(run) for name, run in systems.items()}
    if "faster-whisper-int8" in args.systems:
        systems["faster-whisper-int8"] = FasterWhisperProcess(args.threads)
    sizes = {"whisper-hf": whisper.num_parameters(), "mel-llm": mel_llm.num_parameters()}
    return {name: run for name, run in systems.items() if name in args.systems}, sizes


def measure(systems: dict, clips: list[np.ndarray], batch_size: int) -> dict[str, dict]:
    """Each system on every batch in turn (one untimed warm-up batch each); RTFx and the tokens per system."""
    batches = [clips[i : i + batch_size] for i in range(0, len(clips), batch_size)]
    counts = [max(1, max(len(row) for row in systems["whisper-hf"](batch, 0)[0])) for batch in batches]
    active = {n: run for n, run in systems.items() if not (n == "faster-whisper-int8" and batch_size > 1)}
    for run in active.values():
        run(batches[0], counts[0])
    seconds, tokens = dict.fromkeys(active, 0.0), {name: [] for name in active}
    for batch, count in progress(list(zip(batches, counts, strict=True)), len(batches), f"batch size {batch_size}"):
        for name, run in active.items():
            rows, took = run(batch, count)
            tokens[name] += rows
            seconds[name] += took
    audio_s = sum(len(c) for c in clips) / RATE
    return {
        name: {"rtfx": audio_s / seconds[name], "seconds": seconds[name], "tokens": tokens[name]} for name in active
    }


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    env = environment("benchmarks.equal_size", args)
    announce(f"Equal-size speed: building {args.num_clips} clips, then {len(args.systems)} systems (minutes)")
    clips = speech_clips(args)
    systems, sizes = runners(args)
    results = []
    for batch_size in args.batch_sizes:
        measured = measure(systems, clips, batch_size)
        eager = measured.get("mel-llm", {}).get("tokens")
        for name, m in measured.items():
            row = {"system": name, "batch": batch_size, "rtfx": round(m["rtfx"], 2), "seconds": round(m["seconds"], 2)}
            row["vs_whisper_hf"] = round(m["rtfx"] / measured["whisper-hf"]["rtfx"], 2)
            row["tokens"] = sum(len(tokens) for tokens in m["tokens"])  # what each system emitted, all batches
            if name == "mel-llm-compiled" and eager is not None:
                row["same_tokens_as_eager"] = m["tokens"] == eager
            results.append(row)
    if isinstance(systems.get("faster-whisper-int8"), FasterWhisperProcess):
        systems["faster-whisper-int8"].close()
    durations = [len(c) / RATE for c in clips]
    env |= {"clips_s": [round(min(durations), 1), round(max(durations), 1), round(sum(durations), 1)], **sizes}
    lines = ["| system | batch | RTFx | × HF Whisper | note |", "|---|---:|---:|---:|---|"]
    for r in results:
        note = {True: "same tokens as eager", False: "tokens differ from eager"}.get(r.get("same_tokens_as_eager"), "")
        lines.append(f"| {r['system']} | {r['batch']} | {r['rtfx']:.1f} | {r['vs_whisper_hf']:.2f} | {note} |")
    lines.append(f"\n{len(clips)} clips, {sum(durations):.0f} s; parameters: {sizes}")
    write_results(args.out, env, results, "\n".join(lines))
    return results


if __name__ == "__main__":
    main()
