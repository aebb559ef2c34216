"""TESU-LLM (`MelLLMConfig(frontend="unified")`): one space for speech and text, an LLM side trained on text alone."""

import json

import numpy as np
import pytest
import torch

from modeling_mel_llm import MelLLMConfig, MelLLMForSpeechLM
from modeling_mel_llm.unified_encoder import merge_segments, unit_segments
from processing import MelLLMProcessor
from tests.conftest import REPO_ROOT
from tests.fresh_process import auto_load_in_fresh_process
from training.arguments import ModelArguments
from training.finetuning import apply_finetuning
from training.tesu import StageBudget, freeze_for_stage
from training.text_as_speech import TextAsSpeechCollator, TextPathSimulation, simulate_posteriors
from training.tiny import build_tiny_model, build_tiny_processor, tiny_text_config


UNIFIED = {"unified_encoder_size": 32, "unified_encoder_layers": 1, "unified_text_encoder_layers": 1,
           "unified_encoder_heads": 2}  # fmt: skip


def unified(shared_space: str = "posterior", seed: int = 0, **config) -> tuple[MelLLMProcessor, MelLLMForSpeechLM]:
    processor = build_tiny_processor(frames_per_patch=4)
    torch.manual_seed(seed)
    overrides = {**UNIFIED, "shared_space": shared_space, **config}
    model = build_tiny_model(processor, frontend="unified", audio_overrides=overrides).eval()
    processor.speech_units, processor.unit_vocabulary = model.config.units, list(model.config.unit_vocabulary)
    return processor, model


def emit_units_in_bursts(model: MelLLMForSpeechLM) -> None:
    """Make the random CTC head say a unit on about half the frames and blank on the rest, so merging leaves some
    placeholders empty (what a trained encoder does)."""
    with torch.no_grad():
        model.unified_frontend.ctc_head.bias[0] = 2.5
        model.unified_frontend.ctc_head.weight.mul_(40)


def posteriors_of(labels: list[int], num_units: int = 5, sure: float = 0.97) -> torch.Tensor:
    rows = torch.full((len(labels), num_units), (1 - sure) / (num_units - 1))
    rows[torch.arange(len(labels)), torch.tensor(labels)] = sure
    return rows


def test_config_checks_the_unified_fields():
    config = MelLLMConfig(text_config=tiny_text_config(), frontend="unified")
    assert config.unit_vocabulary[:3] == ["<blank>", "|", "'"]
    assert len(config.unit_vocabulary) == 29
    assert len(MelLLMConfig(text_config=tiny_text_config(), frontend="unified", units="phonemes").unit_vocabulary) > 50
    for kwargs, message in [
        ({"units": "graphemes"}, "units='graphemes'"),
        ({"shared_space": "latent"}, "shared_space='latent'"),
        ({"blank_threshold": 0.0}, "blank_threshold must be within"),
        ({"unified_encoder_heads": 5}, "must divide unified_encoder_size"),
        ({"tts_head": True}, "needs a causal audio input path|no tts_head"),
        ({"unit_vocabulary": ["<blank>", "a", "a"]}, "each once"),
    ]:
        with pytest.raises(ValueError, match=message):
            MelLLMConfig(text_config=tiny_text_config(), frontend="unified", **kwargs)


def test_blank_skip_and_merge_give_one_vector_per_unit_on_hand_made_posteriors():
    # frames: blank, a, a, blank, a, b, b(unsure blank 0.6 < 0.9: kept), blank, c, padding
    labels = [0, 2, 2, 0, 2, 3, 3, 0, 4, 0]
    posteriors = posteriors_of(labels)[None]
    posteriors[0, 6] = torch.tensor([0.6, 0.0, 0.0, 0.4, 0.0])
    mask = torch.tensor([[True] * 9 + [False]])
    segments = unit_segments(posteriors, mask, blank_threshold=0.9)
    assert segments.tolist() == [[-1, 0, 0, -1, 1, 2, 2, -1, 3, -1]]  # "a a" kept apart by the blank, b merged
    merged, kept = merge_segments(posteriors, segments)
    assert kept.tolist() == [[True] * 4 + [False] * 6]
    assert merged[0, :4, 1:].argmax(-1).add(1).tolist() == [2, 2, 3, 4]
    torch.testing.assert_close(merged[0, 2], (posteriors[0, 5] + posteriors[0, 6]) / 2)
    strict = unit_segments(posteriors, mask, blank_threshold=0.5)  # now the unsure frame is a blank
    assert strict.tolist() == [[-1, 0, 0, -1, 1, 2, -1, -1, 3, -1]]


def test_text_and_speech_reach_the_same_space_with_the_same_shapes(fsdd_batch):
    for space in ("posterior", "hidden"):
        processor, model = unified(space)
        emit_units_in_bursts(model)
        features = processor.feature_extractor(fsdd_batch[0][:2], sampling_rate=16_000)
        patches, patch_mask = model.audio_frontend(features["input_features"], features["input_features_mask"].bool())
        with torch.no_grad():
            speech, kept = model.unified_frontend.speech_vectors(patches, patch_mask)
            text = (
                model.unified_frontend.text_vectors(*processor(text_as_speech=["two", "seven"]).values()[-2:])
                if False
                else None
            )
            posts = processor(text_as_speech=["two", "seven"])
            text = model.unified_frontend.text_vectors(posts["unit_posteriors"], posts["unit_posteriors_mask"])
        assert speech.shape[-1] == text.shape[-1] == model.unified_frontend.output_size
        assert 0 < kept.sum() < patch_mask.sum()  # merged: fewer vectors than patches
        assert text.shape[:2] == (2, 5)
        assert posts["unit_posteriors_mask"].sum(-1).tolist() == [3, 5]
        if space == "posterior":  # a merged speech segment and a text unit with the same posterior coincide
            _hidden, logits = model.unified_frontend.speech_states(patches, patch_mask)
            merged, _ = merge_segments(logits.softmax(-1), unit_segments(logits.softmax(-1), patch_mask, 0.9))
            as_text = model.unified_frontend.text_vectors(merged, kept)
            torch.testing.assert_close(as_text, speech)


def test_the_text_path_simulation_drops_repeats_and_smooths_as_configured():
    simulation = TextPathSimulation(smoothing_max=0.2, drop_rate=0.1, repeat_rate=0.05)
    rng = np.random.default_rng(0)
    units, lengths, smoothing = list(range(1, 21)), [], []
    for _ in range(2000):
        posteriors = simulate_posteriors(units, 30, simulation, rng)
        lengths.append(len(posteriors))
        smoothing.append(1.0 - posteriors.max(-1).mean())
        assert np.allclose(posteriors.sum(-1), 1.0, atol=1e-5)
        assert (posteriors[:, 0] == 0).all()
    expected_length = len(units) * (1 - 0.1) * (1 + 0.05)
    assert abs(np.mean(lengths) - expected_length) < 0.1
    assert abs(np.mean(smoothing) - 0.1) < 0.005  # α ~ U(0, 0.2)
    exact = simulate_posteriors(units, 30, TextPathSimulation(0.0, 0.0, 0.0), rng)
    assert (exact.argmax(-1) == np.array(units)).all()
    assert exact.max() == 1.0
    with pytest.raises(ValueError, match="text_drop_rate must be within"):
        TextPathSimulation(drop_rate=1.0)


def test_the_processor_spells_text_as_units_with_one_placeholder_each():
    processor, model = unified()
    batch = processor(text_as_speech=["Two", "three plus 4"], text_target=["two", "seven"])
    assert processor.text_units("two") == [model.config.unit_vocabulary.index(c) for c in "two"]
    assert batch["unit_posteriors_mask"].sum(-1).tolist() == [3, len("three|plus|four")]
    assert (batch["input_ids"] == processor.audio_token_id).sum(-1).tolist() == [3, 15]
    assert torch.isfinite(model(**batch).loss)
    with pytest.raises(ValueError, match="not both"):
        processor(audio=[np.zeros(1600, np.float32)], text_as_speech=["two"], sampling_rate=16_000)
    with pytest.raises(ValueError, match="no speech units"):
        build_tiny_processor()(text_as_speech=["two"])
    phonemes = MelLLMProcessor(processor.feature_extractor, processor.tokenizer, speech_units="phonemes",
                               unit_vocabulary=MelLLMConfig(frontend="unified", units="phonemes").unit_vocabulary)  # fmt: skip
    assert len(phonemes.text_units("three")) == 3  # θ ɹ iː


def test_merged_speech_reaches_the_llm_as_if_the_empty_placeholders_were_not_there(fsdd_batch):
    processor, model = unified()
    emit_units_in_bursts(model)
    inputs = processor(fsdd_batch[0][:3], sampling_rate=16_000, padding="longest", return_tensors="pt")
    with torch.no_grad():
        output = model(**inputs)
        embeds, unfilled = model._embed_inputs(inputs["input_ids"], None, inputs["input_features"],
                                               inputs["input_features_mask"])  # fmt: skip
    assert unfilled.any()
    assert (output.attention_mask == (inputs["attention_mask"].bool() & ~unfilled)).all()
    expected = model.generate(**inputs, max_new_tokens=6, do_sample=False)[:, inputs["input_ids"].shape[1] :]
    for row in range(3):  # each row alone, compacted by hand: the LLM sees only the filled positions
        keep = output.attention_mask[row].bool()
        compact = embeds[row, keep][None]
        with torch.no_grad():
            logits = model.language_model(inputs_embeds=compact).logits[0, -1]
            alone = model.generate(inputs_embeds=compact, attention_mask=torch.ones(1, compact.shape[1], dtype=torch.long),
                                   max_new_tokens=6, do_sample=False)  # fmt: skip
        torch.testing.assert_close(logits, output.logits[row, -1], atol=1e-4, rtol=1e-4)
        assert alone[0].tolist() == expected[row, : alone.shape[1]].tolist()


def test_the_text_only_stage_never_trains_the_encoder_and_refuses_audio(fsdd_batch):
    processor, model = unified()
    model.train()
    freeze_for_stage(model, "text_only")
    collator = TextAsSpeechCollator(processor)
    batch = collator([{"spoken": "two", "target": "two", "seed": 1}, {"spoken": "nine one", "target": "nine one"}])
    assert "input_features" not in batch
    model(**batch).loss.backward()
    unified_frontend = model.unified_frontend
    assert all(p.grad is None for p in unified_frontend.speech_encoder.parameters())
    assert all(p.grad is None for p in unified_frontend.ctc_head.parameters())
    assert unified_frontend.unit_embeddings.weight.grad.abs().sum() > 0
    assert model.multi_modal_projector.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="carry audio, but this is the text-only stage"):
        collator([{"spoken": "two", "target": "two", "audio": fsdd_batch[0][0]}])
    lora = apply_finetuning(unified()[1], ModelArguments(finetune="lora", lora_r=4, lora_alpha=8))
    trainable = {name for name, p in lora.named_parameters() if p.requires_grad}
    assert any("unit_embeddings" in name for name in trainable)
    assert not any("speech_encoder" in name for name in trainable)


def test_the_stage_budget_splits_max_steps():
    assert StageBudget.of(ModelArguments(tesu_encoder_steps=300), 400) == StageBudget(300, 100)
    assert StageBudget.of(ModelArguments(tesu_stage="encoder"), 400) == StageBudget(400, 0)
    with pytest.raises(ValueError, match="needs init_from"):
        StageBudget.of(ModelArguments(tesu_stage="text_only"), 400)
    with pytest.raises(ValueError, match="tesu_encoder_steps must be within"):
        StageBudget.of(ModelArguments(tesu_encoder_steps=400), 400)


@pytest.fixture(scope="module")
def tesu_run(tmp_path_factory):
    """The tesu_fsdd recipe, shrunk, on the committed FSDD clips: CTC on the training takes, then text alone."""
    from training.train import main

    output_dir = tmp_path_factory.mktemp("tesu")
    report = main([
        str(REPO_ROOT / "training/configs/tesu_fsdd.yaml"), "--fsdd_test_speaker=null", f"--output_dir={output_dir}",
        "--max_steps=800", "--tesu_encoder_steps=600", "--tiny_hidden_size=64", "--tiny_num_layers=2",
        "--unified_config={unified_encoder_size: 96, unified_encoder_layers: 2}", "--eval_max_samples=null",
    ])  # fmt: skip
    return output_dir, report


def test_a_model_trained_on_text_alone_transcribes_fsdd_speech(tesu_run):
    output_dir, report = tesu_run
    summary = json.loads((output_dir / "training_summary.json").read_text())
    assert summary["llm_audio_seconds"] == 0
    assert summary["encoder_audio_seconds"] > 0
    assert summary["optimizer_steps"] == {"encoder": 600, "text_only": 200, "total": 800}
    assert summary["text_examples"] == 200 * 16
    assert summary["per_device_train_batch_size"] == 16
    assert report["sets"]["fsdd_test"]["wer"] < 50
    assert 0 <= report["arithmetic"]["fsdd_test"]["accuracy"] <= 100


def test_the_text_only_stage_runs_alone_from_a_trained_encoder(tesu_run, tmp_path):
    from training.train import main

    output_dir, _ = tesu_run
    report = main([
        str(REPO_ROOT / "training/configs/tesu_fsdd.yaml"), "--fsdd_test_speaker=null", f"--output_dir={tmp_path}",
        f"--init_from={output_dir}", "--tesu_stage=text_only", "--max_steps=20", "--eval_max_samples=8",
    ])  # fmt: skip
    assert report["summary"]["optimizer_steps"] == {"text_only": 20, "total": 20}
    trained = MelLLMForSpeechLM.from_pretrained(output_dir).unified_frontend.speech_encoder.state_dict()
    again = MelLLMForSpeechLM.from_pretrained(tmp_path).unified_frontend.speech_encoder.state_dict()
    assert all(torch.equal(trained[name], again[name]) for name in trained)


def test_auto_loading_in_a_fresh_process_and_the_asr_pipeline_work(tesu_run, fsdd_batch):
    from transformers import pipeline

    output_dir, _ = tesu_run
    clip = fsdd_batch[0][1]
    fresh = auto_load_in_fresh_process(output_dir, clip)
    model = MelLLMForSpeechLM.from_pretrained(output_dir).eval()
    processor = MelLLMProcessor.from_pretrained(output_dir)
    inputs = processor([clip], sampling_rate=16_000, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(fresh["logits"]), model(**inputs).logits[0, -1], atol=1e-5, rtol=1e-5)
    assert fresh["tokens"] == model.generate(**inputs, max_new_tokens=5, do_sample=False)[0].tolist()
    asr = pipeline("automatic-speech-recognition", model=str(output_dir), trust_remote_code=True)
    expected = processor.batch_decode(model.generate(**inputs, do_sample=False), skip_special_tokens=True)[0]
    assert asr(clip)["text"].strip() == expected.strip()


def test_the_gpu_recipe_runs_20_steps_with_a_tiny_backbone_on_local_clips(tmp_path):
    """tesu_librispeech.yaml as written (LoRA, its encoder stage settings), with the backbone and data swapped for
    what CI has: a tiny from-scratch LM, the committed FSDD clips and digit text."""
    from training.train import main

    report = main([
        str(REPO_ROOT / "training/configs/tesu_librispeech.yaml"), f"--output_dir={tmp_path}", "--text_model=null",
        "--corpus=fsdd", "--fsdd_test_speaker=null", "--tesu_text=digits", "--tesu_text_examples=400",
        "--max_steps=20", "--tesu_encoder_steps=10", "--bf16=false", "--use_cpu=true", "--dataloader_num_workers=0",
        "--per_device_train_batch_size=4", "--eval_max_samples=4", "--save_strategy=no", "--lora_r=4",
        "--lora_alpha=8", "--unified_config={unified_encoder_size: 32, unified_encoder_layers: 1}",
    ])  # fmt: skip
    assert report["summary"]["optimizer_steps"] == {"encoder": 10, "text_only": 10, "total": 20}
    assert report["summary"]["llm_audio_seconds"] == 0
    assert (tmp_path / "adapter").is_dir()  # LoRA on the LLM side, merged into the saved model
