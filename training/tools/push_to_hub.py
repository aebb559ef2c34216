"""Publish a trained Mel-LLM: one folder with weights (safetensors), code files, processor and a model card.

    python -m training.tools.push_to_hub --model runs/tiny --repo-id you/mel-llm-tiny [--private] [--folder-only DIR]

The folder loads anywhere with `AutoModel.from_pretrained(..., trust_remote_code=True)` and
`pipeline("automatic-speech-recognition", model=..., trust_remote_code=True)`.
"""

import argparse
import json
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from modeling_mel_llm import MelLLMForSpeechLM
from processing import MelLLMProcessor


CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

An encoder-free speech LLM ([Mel-LLM](https://arxiv.org/abs/2606.10231)): log-mel patches go through one linear
projection straight into the `{{ backbone }}` decoder ({{ num_parameters }} parameters, front end `{{ frontend }}`,
{{ frames_per_patch }} frames = {{ frames_per_patch * 10 }} ms per audio token). Built with
[mel-llm](https://pypi.org/project/mel-llm/).

## Use

```python
from transformers import pipeline

asr = pipeline("automatic-speech-recognition", model="{{ repo_id }}", trust_remote_code=True)
asr("speech.wav", chunk_length_s=20)
```

## Training

{{ training }}

## Evaluation

{{ evaluation }}

## Intended use and limitations

Intended for research on encoder-free speech LLMs and as a starting point for fine-tuning: transcribing English
speech ({{ "and speaking it, " if tts else "" }}16 kHz mono; longer audio through the pipeline's `chunk_length_s`).
{{ limitations }}
The model has no speaker prompt, no punctuation or casing in its transcripts (they follow Whisper's English
normaliser), and was not evaluated for fairness across accents, ages or recording conditions beyond the sets above.

## Citation

```bibtex
@article{fan2026melllm,
  title   = {LLM can Read Spectrogram: Encoder-free Speech-Language Modeling},
  author  = {Fan and others},
  journal = {arXiv preprint arXiv:2606.10231},
  year    = {2026}
}
```

{{ results }}
"""
SYNTHETIC_LIMITS = (
    "**Trained only on synthetic speech**: espeak-ng voices reading sentences of a 387-word template language. It "
    "reads new espeak-ng voices well but does not transcribe everyday English, real voices or noisy audio reliably; "
    "fine-tune it on real speech before any real use."
)


def describe_training(run_config: dict | None) -> tuple[str, str]:
    """(training section, limitations) from a run's `run_config.yaml`; empty when the folder has none."""
    if not run_config:
        return "Not recorded with this model (no `run_config.yaml`).", ""
    data, model, training = run_config["data"], run_config["model"], run_config["training"]
    corpus = data["corpus"]
    sources = {
        "synthetic": f"mel-llm's embedded espeak-ng corpus ({data.get('synthetic_num_train')} training utterances)",
        "fsdd": "FSDD (Free Spoken Digit Dataset, CC BY-SA 4.0): spoken digits 0-9 by five speakers",
        "manifest": f"the JSONL manifest `{data.get('train_manifest')}`",
        "hub": f"the `datasets` dataset `{data.get('dataset_name')}`",
    }
    lines = [
        f"- Data: {sources.get(corpus, corpus)}.",
        f"- Backbone: `{model.get('text_model') or 'tiny LM from scratch'}`, fine-tuning: `{model.get('finetune')}`.",
        f"- {training.get('max_steps')} steps, batch {training.get('per_device_train_batch_size')} per device, "
        f"learning rate {training.get('learning_rate')}, seed {training.get('seed')}; "
        f"{run_config.get('train_runtime_s', '?')} s of training.",
    ]
    limits = {"synthetic": SYNTHETIC_LIMITS, "fsdd": "**Trained on spoken digits only**: it knows ten words."}
    return "\n".join(lines), limits.get(corpus, "")


def eval_results(report: dict | None) -> list[EvalResult]:
    """`model-index` entries (WER and CER per held-out set) from a run's `report.json`."""
    results = []
    for name, scores in (report or {}).get("sets", {}).items():
        for metric in ("wer", "cer"):
            results.append(
                EvalResult(
                    task_type="automatic-speech-recognition",
                    dataset_type=name,
                    dataset_name=name,
                    metric_type=metric,
                    metric_value=scores[metric],
                    metric_name=f"{metric.upper()} (%)",
                )
            )
    return results


def describe_evaluation(report: dict | None) -> str:
    """A table of the held-out sets' WER/CER and how they were decoded, or a note that none were run."""
    if not report or not report.get("sets"):
        return "No held-out evaluation was recorded with this model (no `report.json`)."
    rows = [f"| {name} | {s['n']} | {s['wer']} | {s['cer']} |" for name, s in report["sets"].items()]
    decoding = ", ".join(f"{k}={v}" for k, v in report.get("decoding", {}).items())
    return "\n".join(
        [
            f"{report.get('protocol', '')}; decoding: {decoding}.",
            "",
            "| set | utterances | WER % | CER % |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )


def write_model_card(
    folder: Path,
    model: MelLLMForSpeechLM,
    repo_id: str,
    results: str = "",
    report: dict | None = None,
    run_config: dict | None = None,
    **card_data,
) -> ModelCard:
    """
    README.md with the Hub metadata (`pipeline_tag: automatic-speech-recognition`, `custom_code`; a model with the
    mel head is also tagged `text-to-speech`, since the Hub takes one pipeline tag per repo), `model-index` results
    from the run's `report.json`, its training data and recipe from `run_config.yaml`, limitations and citation.
    """
    tags = ["mel-llm", "speech", "asr", "encoder-free", "custom_code"]
    if model.config.tts_head:
        tags += ["text-to-speech", "tts"]
    training, limitations = describe_training(run_config)
    data = ModelCardData(
        pipeline_tag="automatic-speech-recognition",
        library_name="transformers",
        tags=tags,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results(report) or None,
        **card_data,
    )
    card = ModelCard.from_template(
        data,
        template_str=CARD_TEMPLATE,
        model_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        backbone=model.config.text_config.model_type,
        num_parameters=f"{model.num_parameters():,}",
        frontend=model.config.frontend,
        frames_per_patch=model.config.frames_per_patch,
        tts=model.config.tts_head,
        training=training,
        evaluation=describe_evaluation(report),
        limitations=limitations,
        results=results,
    )
    card.save(folder / "README.md")
    return card


def save_for_hub(
    model: MelLLMForSpeechLM,
    processor: MelLLMProcessor,
    folder: str | Path,
    repo_id: str,
    run_folder: str | Path | None = None,
    **card_data,
) -> Path:
    """Write everything a Hub repo needs into `folder` (nothing is uploaded); the card reads `report.json` and
    `run_config.yaml` from `run_folder`, the training run's output folder, when it has them."""
    folder = Path(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    run_files = run_record(Path(run_folder)) if run_folder is not None else {}
    write_model_card(folder, model, repo_id, **run_files, **card_data)
    return folder


def run_record(run_folder: Path) -> dict:
    """The run's `report.json` and `run_config.yaml`, where present, as `write_model_card` arguments."""
    record = {}
    if (run_folder / "report.json").is_file():
        record["report"] = json.loads((run_folder / "report.json").read_text())
    if (run_folder / "run_config.yaml").is_file():
        record["run_config"] = yaml.safe_load((run_folder / "run_config.yaml").read_text())
    return record


def push_folder(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a `save_for_hub` folder; returns the commit URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="Upload Mel-LLM")
    return commit.commit_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a save_pretrained folder (model + processor)")
    parser.add_argument("--repo-id", required=True)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--license", default="apache-2.0")
    parser.add_argument("--folder-only", help="write the Hub folder here and upload nothing")
    args = parser.parse_args(argv)
    model = MelLLMForSpeechLM.from_pretrained(args.model)
    processor = MelLLMProcessor.from_pretrained(args.model)
    folder = Path(args.folder_only or Path(args.model) / "hub")
    save_for_hub(model, processor, folder, args.repo_id, run_folder=args.model, license=args.license)
    print(f"Hub folder written to {folder}")
    if not args.folder_only:
        print(push_folder(folder, args.repo_id, private=args.private))


if __name__ == "__main__":
    main()


__all__ = ["push_folder", "save_for_hub", "write_model_card"]
