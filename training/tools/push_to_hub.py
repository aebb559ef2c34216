"""Publish a trained Mel-LLM: one folder with weights (safetensors), code files, processor and a model card.

    python -m training.tools.push_to_hub --model runs/tiny --repo-id you/mel-llm-tiny [--private] [--folder-only DIR]

The folder loads anywhere with `AutoModel.from_pretrained(..., trust_remote_code=True)` and
`pipeline("automatic-speech-recognition", model=..., trust_remote_code=True)`.
"""

import argparse
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, ModelCardData

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

{{ results }}
"""


def write_model_card(
    folder: Path, model: MelLLMForSpeechLM, repo_id: str, results: str = "", **card_data
) -> ModelCard:
    """
    README.md with the Hub metadata (`pipeline_tag: automatic-speech-recognition`, `custom_code`; a model with the
    mel head is also tagged `text-to-speech`, since the Hub takes one pipeline tag per repo).
    """
    tags = ["mel-llm", "speech", "asr", "encoder-free", "custom_code"]
    if model.config.tts_head:
        tags += ["text-to-speech", "tts"]
    data = ModelCardData(
        pipeline_tag="automatic-speech-recognition",
        library_name="transformers",
        tags=tags,
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
        results=results,
    )
    card.save(folder / "README.md")
    return card


def save_for_hub(
    model: MelLLMForSpeechLM, processor: MelLLMProcessor, folder: str | Path, repo_id: str, **card_data
) -> Path:
    """Write everything a Hub repo needs into `folder` (nothing is uploaded)."""
    folder = Path(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    write_model_card(folder, model, repo_id, **card_data)
    return folder


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
    save_for_hub(model, processor, folder, args.repo_id, license=args.license)
    print(f"Hub folder written to {folder}")
    if not args.folder_only:
        print(push_folder(folder, args.repo_id, private=args.private))


if __name__ == "__main__":
    main()


__all__ = ["push_folder", "save_for_hub", "write_model_card"]
