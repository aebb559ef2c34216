"""Score a Mel-LLM on ASR test sets with the Open ASR leaderboard protocol; write report.json and report.md.

    python -m training.evaluation.eval_asr --model runs/tiny_cpu --data test=manifest.jsonl [--data other.jsonl ...]
        [--batch-size 16] [--max-samples N] [--num-beams 1] [--out-dir DIR] [--device cpu|cuda] [--dtype auto|...]
        [--int8] [--compile]

References and hypotheses (greedy, or beam search with --num-beams) go through Whisper's English normaliser; samples
whose normalised reference is empty are dropped; WER/CER are corpus-level (jiwer, x100, 2 decimals); the average is
the unweighted mean of set WERs.
RTFx = audio seconds / seconds spent in pre-processing + generate + decoding. One warm-up batch (the first batch of
the first set, transcribed once more before timing starts) keeps one-off start-up costs out of the timing, as the
leaderboard's warm-up run does, so every set's RTFx covers all of its batches.
"""

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import jiwer
import numpy as np
import torch
from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

from processing import load_audio
from training.data import Utterance, read_manifest
from training.evaluation.text_normalizer import normalize_english
from training.progress import progress
from training.tools.int8 import int8_config


REPO_ROOT = Path(__file__).resolve().parents[2]


def peak_levelled(audio: np.ndarray) -> np.ndarray:
    """`audio` with its peak at 0.9, as the training data is (log-mel shifts with gain)."""
    return audio / max(float(np.abs(audio).max()), 1e-4) * np.float32(0.9)


def load_clip(utterance: Utterance, sampling_rate: int, peak_normalize: bool = True) -> np.ndarray:
    """Mono float32 at `sampling_rate`; peak-levelled (`peak_levelled`) unless `peak_normalize` is False."""
    audio = load_audio(str(utterance.audio_path), sampling_rate)
    return peak_levelled(audio) if peak_normalize else audio


def transcribe_batch(model, processor, clips: list, instruction: str | None = None, **generate_kwargs) -> list[str]:
    """Transcripts of one batch of 16 kHz mono clips (prompt, left-padded generate, decode, strip); greedy unless
    `generate_kwargs` ask for beams. `instruction` replaces the ASR prompt's (another task asked of the audio)."""
    generate_kwargs = {"do_sample": False, "num_beams": 1, "max_new_tokens": 128, **generate_kwargs}
    prompts = None if instruction is None else [processor.build_prompt(instruction)] * len(clips)
    rate = processor.feature_extractor.sampling_rate
    inputs = processor(text=prompts, audio=clips, sampling_rate=rate, return_tensors="pt")
    inputs = inputs.to(model.device)
    inputs["input_features"] = inputs["input_features"].to(model.dtype)
    with torch.inference_mode():
        tokens = model.generate(**inputs, **generate_kwargs)
    new_tokens = tokens[:, inputs["input_ids"].shape[1] :]
    return [text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]


def score(references: list[str], hypotheses: list[str]) -> dict:
    """Corpus-level WER/CER (x100) and error counts of normalised texts, plus each utterance's word errors."""
    words = jiwer.process_words(references, hypotheses)
    characters = jiwer.process_characters(references, hypotheses)
    per_utterance = []
    for reference, chunks in zip(references, words.alignments, strict=True):
        errors = sum(
            c.hyp_end_idx - c.hyp_start_idx if c.type == "insert" else c.ref_end_idx - c.ref_start_idx
            for c in chunks
            if c.type != "equal"
        )
        per_utterance.append((errors, len(reference.split())))
    return {
        "wer": round(100 * words.wer, 2),
        "cer": round(100 * characters.cer, 2),
        "substitutions": words.substitutions,
        "deletions": words.deletions,
        "insertions": words.insertions,
        "reference_words": sum(n for _, n in per_utterance),
        "per_utterance": per_utterance,
    }


def normalized_score(references: list[str], hypotheses: list[str]) -> dict:
    """`score` with both sides through Whisper's English normaliser (the Open ASR protocol)."""
    return score([normalize_english(r) for r in references], [normalize_english(h) for h in hypotheses])


def summarize_set(
    utterances: list[Utterance],
    hypotheses: list[str],
    audio_seconds: float = 0.0,
    transcribe_seconds: float = 0.0,
    dropped: int = 0,
    worst_n: int = 10,
) -> dict:
    """One set's scores; `utterances` must already exclude empty normalised references (see `evaluate_sets`)."""
    references = [normalize_english(u.text) for u in utterances]
    normalized = [normalize_english(h) for h in hypotheses]
    if not references or not all(references):
        raise ValueError("summarize_set needs utterances whose normalised references are all non-empty.")
    scores = score(references, normalized)
    records = [
        {
            "line": u.line,
            "audio_path": str(u.audio_path),
            "reference": u.text,
            "hypothesis": hypothesis,
            "normalized_reference": reference,
            "normalized_hypothesis": hyp,
            "errors": errors,
            "wer": round(100 * errors / words, 2),
        }
        for u, hypothesis, reference, hyp, (errors, words) in zip(
            utterances, hypotheses, references, normalized, scores.pop("per_utterance"), strict=True
        )
    ]
    worst = sorted((r for r in records if r["errors"]), key=lambda r: (-r["wer"], -r["errors"]))[:worst_n]
    return {
        "n": len(records),
        "dropped_empty_reference": dropped,
        **scores,
        "audio_seconds": audio_seconds,  # unrounded: `aggregate` pools them into the overall RTFx
        "transcribe_seconds": transcribe_seconds,
        "rtfx": round(audio_seconds / transcribe_seconds, 2) if transcribe_seconds > 0 else None,
        "worst": worst,
        "utterances": records,
    }


def aggregate(per_set: dict[str, dict]) -> dict:
    """Leaderboard average: every set counts once, whatever its size; RTFx pools all audio and time."""
    audio = sum(s["audio_seconds"] for s in per_set.values())
    seconds = sum(s["transcribe_seconds"] for s in per_set.values())
    return {
        "average_wer": round(sum(s["wer"] for s in per_set.values()) / len(per_set), 2),
        "rtfx": round(audio / seconds, 2) if seconds > 0 else None,
        "sets": per_set,
    }


def evaluate_sets(
    model,
    processor,
    sets: dict[str, list[Utterance]],
    batch_size: int = 16,
    peak_normalize: bool = True,
    worst_n: int = 10,
    warmup: bool = True,
    **generate_kwargs,
) -> dict:
    """
    Transcribe and score every set. Audio is decoded outside the timed region (I/O is not the model's speed);
    `peak_normalize` levels clips as the package's training data does. `generate_kwargs` (e.g. `num_beams`) reach
    `generate` and are recorded in the results as `decoding`.
    """
    model.eval()
    rate = processor.feature_extractor.sampling_rate
    per_set = {}
    for name, utterances in sets.items():
        kept = [u for u in utterances if normalize_english(u.text)]
        if not kept:
            raise ValueError(f"Set {name!r}: every normalised reference is empty; nothing to score.")
        hypotheses, audio_seconds, seconds = [], 0.0, 0.0
        starts = range(0, len(kept), batch_size)
        for start in progress(starts, len(starts), f"transcribing {name} ({len(kept)} utterances)"):
            clips = [load_clip(u, rate, peak_normalize) for u in kept[start : start + batch_size]]
            if warmup:
                transcribe_batch(model, processor, clips, **generate_kwargs)
                warmup = False
            began = time.perf_counter()
            hypotheses += transcribe_batch(model, processor, clips, **generate_kwargs)
            seconds += time.perf_counter() - began
            audio_seconds += sum(len(clip) for clip in clips) / rate
        per_set[name] = summarize_set(kept, hypotheses, audio_seconds, seconds, len(utterances) - len(kept), worst_n)
        print(f"{name}: n={len(kept)} WER {per_set[name]['wer']:.2f} CER {per_set[name]['cer']:.2f}", flush=True)
    return {**aggregate(per_set), "decoding": {"num_beams": 1, **generate_kwargs}}


def git_commit() -> str | None:
    """The repo's HEAD, so a report can be traced to the code that produced it (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def write_reports(results: dict, out_dir: str | Path, model_path: str = "", command: str = "") -> tuple[Path, Path]:
    """report.json (scores, no per-utterance list), report.md (table + worst utterances), predictions.jsonl."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = {name: {k: v for k, v in s.items() if k != "utterances"} for name, s in results["sets"].items()}
    report = {
        "model": str(model_path),
        "command": command,
        "git_commit": git_commit(),
        "protocol": "Open ASR leaderboard: Whisper EnglishTextNormalizer, corpus WER/CER x100, unweighted average",
        **{k: v for k, v in results.items() if k != "sets"},
        "sets": sets,
    }
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    with open(out_dir / "predictions.jsonl", "w") as f:
        for name, s in results["sets"].items():
            for record in s.get("utterances", []):
                f.write(json.dumps({"set": name, **record}, ensure_ascii=False) + "\n")
    lines = [
        f"# ASR evaluation: `{model_path}`",
        "",
        f"git commit `{report['git_commit']}`; command `{command}`; decoding `{report.get('decoding', {})}`",
        "",
        "| set | n | WER | CER | S | D | I | audio s | RTFx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in sets.items():
        lines.append(
            f"| {name} | {s['n']} | {s['wer']:.2f} | {s['cer']:.2f} | {s['substitutions']} | {s['deletions']} | "
            f"{s['insertions']} | {s['audio_seconds']:.1f} | {s['rtfx']} |"
        )
    lines.append(f"| **average** | | **{results['average_wer']:.2f}** | | | | | | {results['rtfx']} |")
    for name, s in sets.items():
        lines += ["", f"## {name}: worst {len(s['worst'])} utterances", ""]
        for r in s["worst"]:
            lines += [
                f"- WER {r['wer']:.2f} ({r['errors']} errors) `{r['audio_path']}` (line {r['line']})",
                f"  - ref: {r['normalized_reference']}",
                f"  - hyp: {r['normalized_hypothesis']}",
            ]
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


def parse_data_spec(spec: str) -> tuple[str, Path]:
    """`name=path` or `path` (named after the file stem; an existing file whose path holds "=" stays a path)."""
    name, sep, path = spec.partition("=")
    return (name, Path(path)) if sep and name and not Path(spec).is_file() else (Path(spec).stem, Path(spec))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a save_pretrained folder (loaded with trust_remote_code)")
    parser.add_argument("--data", action="append", required=True, help="JSONL manifest, or name=manifest")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-samples", type=int, default=None, help="first N utterances of each set")
    parser.add_argument("--out-dir", default=None, help="defaults to MODEL/eval")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--num-beams", type=int, default=1, help="beam width; 1 = greedy")
    parser.add_argument("--worst", type=int, default=10, help="worst utterances listed per set in report.md")
    parser.add_argument("--no-peak-normalize", action="store_true", help="feed clips at their recorded level")
    parser.add_argument("--int8", action="store_true", help="load the backbone's linear layers as int8 (torchao)")
    parser.add_argument("--compile", action="store_true", help="torch.compile forward, decode with a static cache")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)

    sets = {}
    for spec in args.data:
        name, path = parse_data_spec(spec)
        if name in sets:
            parser.error(f"two --data sets are named {name!r}; name them with name=path")
        sets[name] = read_manifest(path)[: args.max_samples]
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    quantization = {"quantization_config": int8_config()} if args.int8 else {}
    model = AutoModelForSpeechSeq2Seq.from_pretrained(
        args.model, trust_remote_code=True, dtype=args.dtype, **quantization
    )
    model.to(args.device)
    options = {
        "peak_normalize": not args.no_peak_normalize,
        "worst_n": args.worst,
        "max_new_tokens": args.max_new_tokens,
        "num_beams": args.num_beams,
    }
    if args.compile:
        model.forward = torch.compile(model.forward, dynamic=True)
        options["cache_implementation"] = "static"
    results = evaluate_sets(model, processor, sets, args.batch_size, **options)
    command = shlex.join(["python", "-m", "training.evaluation.eval_asr", *argv])
    _, md_path = write_reports(results, args.out_dir or Path(args.model) / "eval", args.model, command)
    print(f"average WER {results['average_wer']:.2f} over {len(sets)} set(s), RTFx {results['rtfx']}; {md_path}")
    return results


if __name__ == "__main__":
    main()
