"""Shared fixtures: tiny processors and models built locally, and real FSDD clips from tests/fixtures/fsdd."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
import torch


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from training.corpus.fsdd import FSDD_DIR_ENV
from training.evaluation.eval_asr import transcribe_batch
from training.tiny import build_tiny_model, build_tiny_processor


REPO_ROOT = Path(__file__).resolve().parents[1]
FSDD_DIR = REPO_ROOT / "tests" / "fixtures" / "fsdd"  # 132 FSDD recordings (CC BY-SA 4.0), committed
os.environ[FSDD_DIR_ENV] = str(FSDD_DIR)  # recipes and benchmarks run in tests (and their subprocesses) read these


def read_fsdd_manifest() -> list[dict]:
    with open(FSDD_DIR / "manifest.jsonl") as f:
        return [json.loads(line) for line in f]


def load_fsdd_clip(row: dict, rate: int = 16_000) -> np.ndarray:
    """One FSDD recording, resampled from 8 kHz to `rate`, float32 mono."""
    audio, source_rate = soundfile.read(FSDD_DIR / row["path"], dtype="float32")
    return soxr.resample(audio, source_rate, rate).astype(np.float32)


@pytest.fixture(scope="session")
def fsdd_rows() -> list[dict]:
    return read_fsdd_manifest()


@pytest.fixture(scope="session")
def fsdd_batch(fsdd_rows) -> tuple[list[np.ndarray], list[str]]:
    """Four real clips, four different digits, from one speaker's test takes."""
    chosen, seen = [], set()
    for row in fsdd_rows:
        if row["speaker"] == "jackson" and row["fsdd_split"] == "test" and row["digit"] not in seen:
            chosen.append(row)
            seen.add(row["digit"])
        if len(chosen) == 4:
            break
    return [load_fsdd_clip(r) for r in chosen], [r["transcript"] for r in chosen]


@pytest.fixture(scope="session")
def processor():
    return build_tiny_processor()


@pytest.fixture
def make_model(processor):
    """Factory: a seeded tiny Mel-LLM of a given backbone family and front end."""

    def make(family: str = "llama", frontend: str = "stack", seed: int = 0, **text_overrides):
        torch.manual_seed(seed)
        return build_tiny_model(processor, family=family, frontend=frontend, **text_overrides).eval()

    return make


def overfit(model, processor, clips, texts, max_steps: int = 300, target_loss: float = 0.05, lr: float = 3e-3):
    """Train `model` on one batch until the loss is under `target_loss`; returns the last loss."""
    batch = processor(audio=clips, sampling_rate=16_000, text_target=texts)
    model.fit_feature_normalization(batch["input_features"], batch["input_features_mask"])
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(max_steps):
        loss = model(**batch).loss
        if loss.item() < target_loss:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return loss.item()


@pytest.fixture(scope="session")
def overfit_models(processor, fsdd_batch):
    """Per (family, frontend): a tiny model trained to loss < 0.05 on the four real clips of `fsdd_batch`."""
    cache = {}

    def get(family: str = "llama", frontend: str = "stack"):
        if (family, frontend) not in cache:
            torch.manual_seed(0)
            model = build_tiny_model(processor, family=family, frontend=frontend)
            loss = overfit(model, processor, *fsdd_batch)
            cache[family, frontend] = (model, loss)
        return cache[family, frontend]

    return get


def transcribe(model, processor, clips, **generate_kwargs) -> list[str]:
    """Greedy transcripts through the package's own batch transcription (short: test transcripts are words)."""
    return transcribe_batch(model, processor, clips, **{"max_new_tokens": 12, **generate_kwargs})


def overfit_tts(
    model, processor, clips, texts, steps: int = 100, lr: float = 3e-3, word_starts=None
) -> list[dict[str, float]]:
    """Teacher-forced TTS training on one batch; returns the loss terms of every step."""
    batch = processor.tts_inputs(texts, audio=clips, sampling_rate=16_000, word_starts=word_starts)
    model.fit_feature_normalization(batch["mel_targets"], batch["mel_target_mask"])
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        output = model(**batch)
        history.append({"total": output.tts_loss.item(), **{k: v.item() for k, v in output.tts_loss_terms.items()}})
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
    model.eval()
    return history


@pytest.fixture(scope="session")
def tts_clips(fsdd_batch) -> tuple[list[np.ndarray], list[str]]:
    """Two short real clips (0.25 s and 0.35 s: 4 and 5 patches) with different words."""
    clips, texts = fsdd_batch
    return [clips[0][1000:5000], clips[1][1000:6600]], texts[:2]


@pytest.fixture(scope="session")
def tts_model(processor, tts_clips):
    """A tiny stack-front-end model with a mel head, overfit to speak `tts_clips`; and its loss history."""
    torch.manual_seed(0)
    model = build_tiny_model(processor, "llama", "stack", tts_head=True)
    history = overfit_tts(model, processor, *tts_clips)
    return model, history


@pytest.fixture(scope="session")
def tts_dir(tmp_path_factory, tts_model, processor):
    """The overfit TTS model and processor saved as a Hub folder (code files, auto_map, model card)."""
    from training.tools.push_to_hub import save_for_hub

    model, _ = tts_model
    folder = tmp_path_factory.mktemp("tts_hub")
    save_for_hub(model, processor, folder, repo_id="mel-llm/tiny-tts-test", license="apache-2.0")
    return folder
