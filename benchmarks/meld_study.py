"""MELD's discrete latents against the continuous Mel-LLM at equal compute (issue 22): same backbone, steps, batch.

    python -m benchmarks.meld_study fsdd --fsdd_dir DIR [--seeds 0 1 2] [--speakers jackson ...] [--key=value ...]
    python -m benchmarks.meld_study tts [--seeds 0 1 2] [--asr-model runs/tiny_cpu] [--key=value ...]

Three systems, each one recipe file with one setting changed:
- `continuous`: the paper's path (a linear projection in, the VAE mel head out): `latent_config {speech_latent:
  continuous}`;
- `joint`: MELD, the encoder q(z|x) trained with the speech LM (the recipe as shipped);
- `two_stage`: the same encoder and decoder first trained alone as a discrete autoencoder, then frozen
  (`--latent_training=two_stage`; the steps are split, not added).

`fsdd` runs meld_fsdd.yaml leave-one-speaker-out (half the rows TTS in every system); `tts` runs
meld_tts_espeak.yaml (one espeak-ng voice, everyday English, half the rows ASR) and speaks 20 held-out sentences
through `pipeline("text-to-speech")` (benchmarks/tts_everyday.py: Whisper tiny.en CER, with `--asr-model` a Mel-LLM
ASR judge too, deletions, prolonged silences, run-ons, duration against espeak-ng's reading). Both report per
discrete run the code perplexity (2 ** entropy of the argmax codes' histogram, averaged over groups) on the held-out
audio, and the latent bitrate: nominal (G · log2 K per patch) and used (the histograms' entropy). Extra
`--key=value` arguments go to every training run (e.g. `--max_steps=400`). Writes
benchmarks/results/meld_study/<part>.{json,md,png}; the table gives mean ± sd over seeds.
"""

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import REPO_ROOT, environment
from benchmarks.fsdd_loso import SPEAKERS
from benchmarks.study_runs import TrainedRun, grouped_bars, mean_sd, trained_run, write_study
from benchmarks.tts_everyday import main as tts_everyday
from processing import MelLLMProcessor
from training.arguments import parse_config
from training.corpus.corpora import synthetic_manifests
from training.data import Utterance, read_manifest
from training.evaluation.eval_asr import load_clip
from training.progress import announce


CONFIGS = REPO_ROOT / "training" / "configs"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "meld_study"
SYSTEMS = {
    "continuous": ["--latent_config={speech_latent: continuous}"],
    "joint": [],
    "two_stage": ["--latent_training=two_stage"],
}
TTS_SENTENCES = 20


def latent_usage(trained: TrainedRun, utterances: list[Utterance], batch_size: int = 64) -> dict | None:
    """Code perplexity and bitrate of a discrete model's encoder on these clips (None for a continuous model)."""
    latent = trained.model.speech_latent
    if latent is None:
        return None
    processor = MelLLMProcessor.from_pretrained(trained.folder)
    extractor = processor.feature_extractor
    counts = torch.zeros(latent.groups, latent.codes)
    for start in range(0, len(utterances), batch_size):
        clips = [load_clip(u, extractor.sampling_rate) for u in utterances[start : start + batch_size]]
        batch = extractor(clips, sampling_rate=extractor.sampling_rate, padding="longest", return_tensors="pt")
        frames = trained.model.audio_frontend.norm(batch["input_features"])
        counts += latent.code_counts(frames, batch["input_features_mask"].bool())
    bits = latent.code_entropy_bits(counts)
    patches_per_second = 1.0 / extractor.seconds_per_patch
    return {
        "code_perplexity": round(float((2**bits).mean()), 2),
        "nominal_bits_per_second": round(patches_per_second * latent.groups * float(np.log2(latent.codes)), 1),
        "used_bits_per_second": round(patches_per_second * float(bits.sum()), 1),
    }


def fsdd_part(args, overrides: list[str]) -> tuple[list[dict], str]:
    results = []
    for seed in args.seeds:
        for system, setting in SYSTEMS.items():
            for speaker in args.speakers:
                announce(f"seed {seed}, {system}, {speaker} held out")
                run_args = [f"--seed={seed}", f"--fsdd_test_speaker={speaker}", f"--fsdd_dir={args.fsdd_dir}"]
                with trained_run(CONFIGS / "meld_fsdd.yaml", [*run_args, *setting, *overrides]) as trained:
                    held_out = f"fsdd_{speaker}"
                    clips = held_out_utterances(trained, held_out)
                    results.append(
                        {
                            "system": system,
                            "seed": seed,
                            "test_speaker": speaker,
                            "wer": trained.report["sets"][held_out]["wer"],
                            "latent": latent_usage(trained, clips),
                            **trained.cost(),
                        }
                    )
    lines = [
        "| system | avg WER % (mean ± sd over seeds) | worst fold % | code perplexity | used / nominal bit/s | "
        "wall s/run | FLOPs/run | params |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system in SYSTEMS:
        mine = [r for r in results if r["system"] == system]
        averages = [statistics.mean(r["wer"] for r in mine if r["seed"] == s) for s in args.seeds]
        worst = max(statistics.mean(r["wer"] for r in mine if r["test_speaker"] == sp) for sp in args.speakers)
        lines.append(f"| {system} | {mean_sd(averages)} | {worst:.2f} | {latent_cells(mine)} | {cost_cells(mine)} |")
    return results, "\n".join(lines)


def held_out_utterances(trained: TrainedRun, name: str) -> list[Utterance]:
    """The clips a run scored as `name` (its predictions file lists them)."""
    rows = [json.loads(line) for line in (trained.folder / "predictions.jsonl").read_text().splitlines()]
    return [Utterance(Path(r["audio_path"]), r["reference"]) for r in rows if r["set"] == name]


def tts_part(args, overrides: list[str]) -> tuple[list[dict], str]:
    config = CONFIGS / "meld_tts_espeak.yaml"
    results = []
    for seed in args.seeds:
        _, data_args, _ = parse_config([str(config), f"--seed={seed}", *overrides])
        eval_manifest = synthetic_manifests(data_args, seed)[1]
        for system, setting in SYSTEMS.items():
            announce(f"seed {seed}, {system} on the one-voice everyday-English corpus")
            with trained_run(config, [f"--seed={seed}", *setting, *overrides]) as trained:
                spoken = speak_held_out(trained, eval_manifest, args.asr_model, seed)
                results.append(
                    {
                        "system": system,
                        "seed": seed,
                        "asr": trained.wer_sets(),
                        "tts": spoken,
                        "latent": latent_usage(trained, read_manifest(eval_manifest)[:200]),
                        **trained.cost(),
                    }
                )
    judges = [r["judge"] for r in results[0]["tts"]]
    lines = [
        f"| system | {' | '.join(f'TTS CER % ({j})' for j in judges)} | deleted words % | silences ≥ 0.5 s | "
        "run-ons | duration / espeak-ng | ASR WER % (unseen texts) | code perplexity | used / nominal bit/s | "
        "wall s/run | FLOPs/run | params |",
        "|---|" + "---:|" * (len(judges) + 10),
    ]
    for system in SYSTEMS:
        mine = [r for r in results if r["system"] == system]
        cers = [mean_sd([next(t["cer"] for t in r["tts"] if t["judge"] == j) for r in mine]) for j in judges]
        first = [r["tts"][0] for r in mine]  # the per-clip measures do not depend on the judge
        asr = [next(s["wer"] for name, s in r["asr"].items() if name.endswith("unseen_texts")) for r in mine]
        lines.append(
            f"| {system} | {' | '.join(cers)} | {mean_sd([t['deletion_rate'] for t in first])} | "
            f"{mean_sd([t['prolonged_silences'] for t in first])} | {mean_sd([t['run_ons'] for t in first])} | "
            f"{mean_sd([t['duration_ratio'] for t in first])} | {mean_sd(asr)} | {latent_cells(mine)} | "
            f"{cost_cells(mine)} |"
        )
    return results, "\n".join(lines)


def speak_held_out(trained: TrainedRun, manifest: Path, asr_model: str | None, seed: int) -> list[dict]:
    """benchmarks/tts_everyday.py's held-out sentences (temperature 0), one row per judge."""
    with tempfile.TemporaryDirectory() as scratch:
        judge = ["--asr-model", asr_model] if asr_model else []
        argv = ["--model", str(trained.folder), "--manifest", str(manifest), "--max-samples", str(TTS_SENTENCES)]
        argv += ["--temperature", "0", "--seed", str(seed), "--num-examples", "0", "--sets", "held-out", *judge]
        results = tts_everyday([*argv, "--out", str(Path(scratch) / "tts.json")])["results"]
    return [{k: v for k, v in r.items() if k != "examples"} for r in results]


def latent_cells(rows: list[dict]) -> str:
    usage = [r["latent"] for r in rows if r["latent"]]
    if not usage:
        return "— | —"
    used = statistics.mean(u["used_bits_per_second"] for u in usage)
    return f"{mean_sd([u['code_perplexity'] for u in usage])} | {used:.0f} / {usage[0]['nominal_bits_per_second']:.0f}"


def cost_cells(rows: list[dict]) -> str:
    return (
        f"{statistics.mean(r['wall_s'] for r in rows):.0f} | {statistics.mean(r['flos'] for r in rows):.2e} | "
        f"{rows[0]['parameters']:,}"
    )


def plot(part: str, results: list[dict], path: Path) -> None:
    systems = list(dict.fromkeys(r["system"] for r in results))
    if part == "fsdd":
        groups = list(dict.fromkeys(r["test_speaker"] for r in results))
        measures = {g: (lambda r, g=g: r["wer"] if r["test_speaker"] == g else None) for g in groups}
        label = "WER % (mean over seeds)"
    else:
        groups = ["TTS CER", "deleted words", "ASR WER"]
        measures = {
            "TTS CER": lambda r: r["tts"][0]["cer"],
            "deleted words": lambda r: r["tts"][0]["deletion_rate"],
            "ASR WER": lambda r: next(s["wer"] for n, s in r["asr"].items() if n.endswith("unseen_texts")),
        }
        label = "% (mean over seeds; TTS judged by Whisper tiny.en)"
    bars = {}
    for system in systems:
        mine = [r for r in results if r["system"] == system]
        bars[system] = [statistics.mean(v for r in mine if (v := measures[g](r)) is not None) for g in groups]
    grouped_bars(bars, groups, label, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("fsdd", "tts"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fsdd_dir", default=None)
    parser.add_argument("--speakers", nargs="+", default=list(SPEAKERS), help="fsdd: the folds to run")
    parser.add_argument("--asr-model", default=None, help="tts: a Mel-LLM ASR folder as a second judge")
    parser.add_argument("--out_dir", type=Path, default=RESULTS)
    args, overrides = parser.parse_known_args(argv)
    if args.part == "fsdd" and not args.fsdd_dir:
        parser.error("the fsdd part needs --fsdd_dir (a clone of FSDD, or a folder with its manifest.jsonl)")
    env = environment("benchmarks.meld_study", args)
    env["overrides"] = overrides
    results, table = (fsdd_part if args.part == "fsdd" else tts_part)(args, overrides)
    write_study(args.out_dir, args.part, env, results, table)
    plot(args.part, results, args.out_dir / f"{args.part}.png")
    return {"results": results, "table": table}


if __name__ == "__main__":
    main()
