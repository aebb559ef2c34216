"""Hub integration: save_pretrained writes code + auto_map; a fresh process loads everything with remote code."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

from training.tiny import build_tiny_model, build_tiny_processor
from training.tools.push_to_hub import save_for_hub, write_model_card


# Runs in a fresh interpreter in which the repo's packages cannot be imported, even if pip-installed.
FRESH_PROCESS_PRELUDE = """
import importlib.abc, sys
class BlockRepo(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"modeling_mel_llm", "processing", "training", "tests"}:
            raise ImportError(f"{name} must come from the saved folder, not the repo")
sys.meta_path.insert(0, BlockRepo())
import torch
"""


def run_fresh(code: str, cwd) -> str:
    script = FRESH_PROCESS_PRELUDE + textwrap.dedent(code)
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory, overfit_models, processor, fsdd_batch):
    """The overfit llama model with its processor, saved as a Hub folder, plus reference inputs and logits."""
    model, _ = overfit_models("llama", "stack")
    folder = tmp_path_factory.mktemp("hub")
    save_for_hub(model, processor, folder, repo_id="mel-llm/tiny-test", license="apache-2.0")
    inputs = processor(audio=fsdd_batch[0], sampling_rate=16_000)
    with torch.no_grad():
        logits = model(**inputs).logits
    torch.save({"inputs": dict(inputs), "logits": logits}, folder.parent / "reference.pt")
    for i, clip in enumerate(fsdd_batch[0]):
        np.save(folder.parent / f"clip{i}.npy", clip)
    return folder


def test_saved_folder_has_code_auto_map_and_safetensors(saved_dir):
    names = {p.name for p in saved_dir.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "processor_config.json"} <= names
    assert {"configuration_mel_llm.py", "modeling_mel_llm.py", "processing_mel_llm.py"} <= names
    assert {"feature_extraction_mel_llm.py", "pipeline_mel_llm.py", "audio_loading.py"} <= names
    assert not list(saved_dir.glob("*.bin"))
    config = json.loads((saved_dir / "config.json").read_text())
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForSpeechSeq2Seq"}
    assert config["custom_pipelines"]["automatic-speech-recognition"]["impl"].startswith("pipeline_mel_llm.")
    processor_config = json.loads((saved_dir / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_mel_llm.MelLLMProcessor"


def test_model_card_declares_the_asr_pipeline(saved_dir):
    card = ModelCard.load(saved_dir / "README.md")
    assert card.data.pipeline_tag == "automatic-speech-recognition"
    assert card.data.library_name == "transformers"
    assert "custom_code" in card.data.tags
    assert 'pipeline("automatic-speech-recognition", model="mel-llm/tiny-test"' in card.text
    assert "text-to-speech" not in card.data.tags  # an ASR-only model does not claim TTS


def test_model_card_of_a_speaking_model_is_tagged_text_to_speech(tmp_path):
    processor = build_tiny_processor()
    model = build_tiny_model(processor, "llama", "stack", tts_head=True)
    card = write_model_card(tmp_path, model, "mel-llm/tiny-tts")
    assert "text-to-speech" in ModelCard.load(tmp_path / "README.md").data.tags
    assert card.data.pipeline_tag == "automatic-speech-recognition"


def test_fresh_process_loads_every_auto_class_with_identical_logits(saved_dir):
    out = run_fresh(
        f"""
        from transformers import (AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForSpeechSeq2Seq,
                                  AutoProcessor)
        folder, reference = {str(saved_dir)!r}, torch.load({str(saved_dir.parent / "reference.pt")!r})
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        assert type(config).__name__ == "MelLLMConfig" and "transformers_modules" in type(config).__module__
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        feature_extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
        assert type(feature_extractor).__name__ == "MelLLMFeatureExtractor"
        import numpy as np
        clips = [np.load({str(saved_dir.parent)!r} + f"/clip{{i}}.npy") for i in range(4)]
        inputs = processor(audio=clips, sampling_rate=16000)
        for key, value in reference["inputs"].items():
            assert torch.equal(inputs[key], value), key
        for auto_class in (AutoModel, AutoModelForSpeechSeq2Seq):
            model = auto_class.from_pretrained(folder, trust_remote_code=True)
            assert type(model).__name__ == "MelLLMForSpeechLM"
            with torch.no_grad():
                logits = model(**inputs).logits
            assert torch.equal(logits, reference["logits"]), (logits - reference["logits"]).abs().max()
        print("fresh-load-ok")
        """,
        saved_dir.parent,
    )
    assert "fresh-load-ok" in out


def test_fresh_process_pipeline_transcribes_exactly(saved_dir, fsdd_batch):
    out = run_fresh(
        f"""
        import json, numpy as np
        from transformers import pipeline
        asr = pipeline("automatic-speech-recognition", model={str(saved_dir)!r}, trust_remote_code=True)
        clips = [np.load({str(saved_dir.parent)!r} + f"/clip{{i}}.npy") for i in range(4)]
        one_by_one = [asr({{"raw": c, "sampling_rate": 16000}})["text"] for c in clips]
        batched = [o["text"] for o in asr([{{"raw": c, "sampling_rate": 16000}} for c in clips], batch_size=4)]
        print(json.dumps([one_by_one, batched]))
        """,
        saved_dir.parent,
    )
    one_by_one, batched = json.loads(out.strip().splitlines()[-1])
    assert one_by_one == fsdd_batch[1]
    assert batched == fsdd_batch[1]


def test_pipeline_on_long_audio_returns_text_from_every_chunk(processor, fsdd_batch, tmp_path):
    """
    60 s of FSDD digits, one centred in each 3 s segment. With chunk_length_s=4 and stride_length_s=0.5 every window
    holds exactly one digit, at the same place in the window (the last window is 3 s). A tiny model overfit on those
    windows stands in for a trained one: the test checks the chunking, batching, ordering, merging and timestamps.
    """
    from transformers import pipeline

    from tests.conftest import overfit

    rate, segment = 16_000, 3 * 16_000
    clips, texts = fsdd_batch

    def centred(clip, length):
        out = np.zeros(length, dtype=np.float32)
        offset = (segment - len(clip)) // 2
        out[offset : offset + len(clip)] = clip
        return out

    windows = [centred(clip, 4 * rate) for clip in clips] + [centred(clip, 3 * rate) for clip in clips]
    torch.manual_seed(0)
    model = build_tiny_model(processor, "llama", "stack")
    assert overfit(model, processor, windows, texts + texts) < 0.05
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)

    order = [i % 4 for i in range(20)]
    long_audio = np.concatenate([centred(clips[i], segment) for i in order])
    assert len(long_audio) == 60 * rate
    asr = pipeline("automatic-speech-recognition", model=str(tmp_path), trust_remote_code=True)
    result = asr(long_audio, chunk_length_s=4, stride_length_s=0.5, batch_size=4, return_timestamps=True)
    expected = [texts[i] for i in order]
    assert len(result["chunks"]) == 20
    assert [chunk["text"] for chunk in result["chunks"]] == expected
    assert result["text"].split() == expected
    assert result["chunks"][1]["timestamp"] == pytest.approx((3.0, 7.0))
    assert result["chunks"][-1]["timestamp"] == pytest.approx((57.0, 60.0))
    unbatched = asr(long_audio, chunk_length_s=4, stride_length_s=0.5)
    assert unbatched["text"] == result["text"]


def test_fresh_process_loads_the_encoder_frontend_with_its_code(processor, tmp_path):
    """The conformer lives in its own file: save_pretrained must ship it, and remote code must rebuild the model."""
    from modeling_mel_llm import MelLLMConfig, MelLLMForSpeechLM
    from training.tiny import tiny_text_config

    tokenizer = processor.tokenizer
    config = MelLLMConfig(
        text_config=tiny_text_config("phi3", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id),
        audio_token_id=processor.audio_token_id,
        frontend="encoder",
        projector_type="mlp",
        conv_channels=16,
        conv_output_size=32,
        conformer_layers=2,
        conformer_attention_heads=4,
        conformer_ffn_dim=48,
    )
    torch.manual_seed(0)
    model = MelLLMForSpeechLM(config).eval()
    folder = tmp_path / "encoder"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    assert (folder / "conformer_mel_llm.py").exists()
    inputs = processor(audio=[np.full(8_000, 0.05, dtype=np.float32), np.zeros(3_000, dtype=np.float32)])
    with torch.no_grad():
        logits = model(**inputs).logits
    torch.save({"inputs": dict(inputs), "logits": logits}, tmp_path / "reference.pt")
    out = run_fresh(
        f"""
        from transformers import AutoModel
        reference = torch.load({str(tmp_path / "reference.pt")!r})
        model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True)
        assert type(model.audio_frontend.encoder).__name__ == "MelLLMConformerEncoder"
        assert type(model.multi_modal_projector).__name__ == "MelLLMMLPProjector"
        with torch.no_grad():
            logits = model(**reference["inputs"]).logits
        assert torch.equal(logits, reference["logits"]), (logits - reference["logits"]).abs().max()
        print("encoder-load-ok")
        """,
        tmp_path,
    )
    assert "encoder-load-ok" in out


def test_no_code_file_name_is_shared_between_the_model_and_the_processor():
    """save_pretrained copies both packages' files flat into one folder: a shared name would overwrite one of them."""
    from tests.conftest import REPO_ROOT

    modeling = {p.name for p in (REPO_ROOT / "modeling_mel_llm").glob("*.py")} - {"__init__.py"}
    processing = {p.name for p in (REPO_ROOT / "processing").glob("*.py")} - {"__init__.py"}
    assert not modeling & processing
