"""TESU-LLM against the continuous Mel-LLM at equal compute (issue 23): same backbone, batch and total steps.

    python -m benchmarks.tesu_study fsdd --fsdd_dir DIR [--seeds 0 1 2]     # leave-one-speaker-out, both systems
    python -m benchmarks.tesu_study espeak [--seeds 0 1 2] [--fsdd_dir DIR]  # 200-word paired audio, open text

`fsdd`: fsdd_cpu.yaml (continuous) and tesu_fsdd.yaml (TESU: encoder CTC, then text only) on every fold; TESU also
answers spoken digit sums. `espeak` (data: python -m training.corpus.restricted_vocabulary data/tesu_espeak):
tesu_espeak.yaml and the same file as a continuous model (--frontend=stack --frames_per_patch=8), scored on
held-out voices for in-vocabulary sentences and sentences with words the paired audio never had, spoken sums, and
with --fsdd_dir the zero-real-speech row: both models, trained on espeak-ng only, transcribing FSDD. Writes
benchmarks/results/tesu_study/<part>.{json,md,png}: per run WER, wall time, Trainer's FLOPs estimate and
parameters; per system the mean ± sd over seeds.
"""

import argparse
import statistics
from pathlib import Path

import torch

from benchmarks.common import REPO_ROOT, environment
from benchmarks.fsdd_loso import SPEAKERS
from benchmarks.study_runs import grouped_bars, mean_sd, trained_run, write_study
from processing import MelLLMProcessor
from training.corpus.fsdd import fsdd_utterances
from training.evaluation.eval_asr import evaluate_sets
from training.progress import announce


CONFIGS = REPO_ROOT / "training" / "configs"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "tesu_study"
ESPEAK_DATA = "data/tesu_espeak"
CONTINUOUS_ON_ESPEAK = ["--frontend=stack", "--frames_per_patch=8", f"--extra_eval_manifests=[{ESPEAK_DATA}/eval_new_words.jsonl]"]  # fmt: skip


def run(config: Path, overrides: list[str], extra_sets: dict | None = None) -> dict:
    """One training.train run: its WER sets, spoken-sum accuracy, cost and the audio seconds its LLM heard, and
    with `extra_sets` ({name: utterances}) the trained model's WER on them."""
    with trained_run(config, overrides) as trained:
        summary = trained.report.get("summary")
        result = {
            "sets": trained.wer_sets(),
            "arithmetic": {name: a["accuracy"] for name, a in trained.report.get("arithmetic", {}).items()},
            **trained.cost(),
            "llm_audio_seconds": summary["llm_audio_seconds"] if summary else None,
        }
        if extra_sets:
            result["sets"].update(score_elsewhere(trained.model, trained.folder, extra_sets))
        return result


def score_elsewhere(model, folder: Path, sets: dict[str, list]) -> dict:
    """WER of a trained model on sets its run did not score."""
    processor = MelLLMProcessor.from_pretrained(folder)
    with torch.inference_mode():
        scored = evaluate_sets(model.eval(), processor, sets, 64, max_new_tokens=16)["sets"]
    return {name: {"wer": s["wer"], "cer": s["cer"], "n": s["n"]} for name, s in scored.items()}


def fsdd_part(args) -> tuple[list[dict], str]:
    systems = {"continuous": CONFIGS / "fsdd_cpu.yaml", "tesu": CONFIGS / "tesu_fsdd.yaml"}
    results = []
    for seed in args.seeds:
        for system, config in systems.items():
            for speaker in SPEAKERS:
                announce(f"seed {seed}, {system}, {speaker} held out")
                overrides = [f"--seed={seed}", f"--fsdd_test_speaker={speaker}", f"--fsdd_dir={args.fsdd_dir}"]
                result = run(config, overrides)
                fold = result["sets"][f"fsdd_{speaker}"]
                arithmetic = result["arithmetic"].get(f"fsdd_{speaker}")
                results.append({"system": system, "seed": seed, "test_speaker": speaker, "wer": fold["wer"],
                                "arithmetic": arithmetic, **{k: result[k] for k in ("wall_s", "flos", "parameters",
                                "llm_audio_seconds")}})  # fmt: skip
    lines = ["| system | avg WER % (mean ± sd over seeds) | worst fold % | spoken sums % | wall s/run | FLOPs/run | params |",
             "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for system in systems:
        mine = [r for r in results if r["system"] == system]
        averages = [statistics.mean(r["wer"] for r in mine if r["seed"] == s) for s in args.seeds]
        worst = max(statistics.mean(r["wer"] for r in mine if r["test_speaker"] == sp) for sp in SPEAKERS)
        sums = [r["arithmetic"] for r in mine if r["arithmetic"] is not None]
        lines.append(
            f"| {system} | {mean_sd(averages)} | {worst:.2f} | {mean_sd(sums) if sums else '—'} | "
            f"{statistics.mean(r['wall_s'] for r in mine):.0f} | {statistics.mean(r['flos'] for r in mine):.2e} | "
            f"{mine[0]['parameters']:,} |"
        )
    return results, "\n".join(lines)


def espeak_part(args) -> tuple[list[dict], str]:
    extra = {}
    if args.fsdd_dir:  # every FSDD speaker, 500 recordings spread over them: speech unlike any it heard
        every = fsdd_utterances(args.fsdd_dir)
        extra = {"fsdd_zero_real_speech": every[:: max(1, len(every) // 500)][:500]}
    systems = {"continuous": CONTINUOUS_ON_ESPEAK, "tesu": []}
    results = []
    for seed in args.seeds:
        for system, overrides in systems.items():
            announce(f"seed {seed}, {system} on the restricted-vocabulary espeak corpus")
            result = run(CONFIGS / "tesu_espeak.yaml", [f"--seed={seed}", *overrides], extra)
            results.append({"system": system, "seed": seed, **result})
    names = {"eval_in_vocabulary": "a: in-vocabulary", "eval_new_words": "b: new words",
             "fsdd_zero_real_speech": "FSDD, no real speech"}  # fmt: skip
    header = " | ".join(f"{label} WER %" for name, label in names.items() if name in results[0]["sets"])
    lines = [
        f"| system | {header} | spoken sums % | wall s | FLOPs | params |",
        "|---|" + "---:|" * (len(header.split("|")) + 4),
    ]
    for system in systems:
        mine = [r for r in results if r["system"] == system]
        cells = [mean_sd([r["sets"][name]["wer"] for r in mine]) for name in names if name in mine[0]["sets"]]
        sums = [r["arithmetic"]["eval_arithmetic"] for r in mine if "eval_arithmetic" in r["arithmetic"]]
        lines.append(
            f"| {system} | {' | '.join(cells)} | {mean_sd(sums) if sums else '—'} | "
            f"{statistics.mean(r['wall_s'] for r in mine):.0f} | {statistics.mean(r['flos'] for r in mine):.2e} | "
            f"{mine[0]['parameters']:,} |"
        )
    return results, "\n".join(lines)


def plot(part: str, results: list[dict], path: Path) -> None:
    systems = list(dict.fromkeys(r["system"] for r in results))
    groups = list(SPEAKERS) if part == "fsdd" else sorted(results[0]["sets"])
    bars = {}
    for system in systems:
        mine = [r for r in results if r["system"] == system]
        if part == "fsdd":
            bars[system] = [statistics.mean(r["wer"] for r in mine if r["test_speaker"] == g) for g in groups]
        else:
            bars[system] = [statistics.mean(r["sets"][g]["wer"] for r in mine) for g in groups]
    grouped_bars(bars, groups, "WER % (mean over seeds)", path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("fsdd", "espeak"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fsdd_dir", default=None)
    parser.add_argument("--out_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.part == "fsdd" and not args.fsdd_dir:
        parser.error("the fsdd part needs --fsdd_dir (a clone of FSDD, or a folder with its manifest.jsonl)")
    env = environment("benchmarks.tesu_study", args)
    results, table = (fsdd_part if args.part == "fsdd" else espeak_part)(args)
    write_study(args.out_dir, args.part, env, results, table)
    plot(args.part, results, args.out_dir / f"{args.part}.png")
    return {"results": results, "table": table}


if __name__ == "__main__":
    main()
