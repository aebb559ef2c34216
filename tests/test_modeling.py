"""MelLLMForSpeechLM: forward/backward on three backbones, placement checks, batching, loss, load arguments."""

from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_mel_llm import MelLLMConfig, MelLLMForSpeechLM
from training.tiny import FAMILIES


REPO_ROOT = Path(__file__).resolve().parents[1]
FRONTENDS = ("stack", "conv", "encoder")


def _clips(lengths=(16_000, 9_000, 4_321), seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_forward_backward(make_model, processor, family, frontend):
    model = make_model(family, frontend).train()
    batch = processor(audio=_clips(), sampling_rate=16_000, text_target=["one two", "nine", "zero"])
    output = model(**batch)
    assert output.logits.shape == (*batch["input_ids"].shape, model.config.vocab_size)
    assert torch.isfinite(output.loss)
    output.loss.backward()
    assert model.multi_modal_projector.weight.grad.abs().sum() > 0
    embed_grad = model.get_input_embeddings().weight.grad
    assert embed_grad.abs().sum() > 0
    # The placeholder row is overwritten by audio, so no gradient may flow into its embedding.
    assert embed_grad[processor.audio_token_id].abs().sum() == 0


def test_audio_changes_the_output(make_model, processor):
    model = make_model()
    a, b = (processor(audio=[clip], sampling_rate=16_000) for clip in _clips((8000, 8000), seed=1)[:2])
    assert torch.equal(a["input_ids"], b["input_ids"])
    assert not torch.allclose(model(**a).logits, model(**b).logits)


def test_placeholder_count_mismatch_is_a_clear_error(make_model, processor):
    model = make_model()
    batch = processor(audio=_clips()[:1], sampling_rate=16_000)
    ids = batch["input_ids"].clone()
    ids[0, (ids[0] == processor.audio_token_id).nonzero()[0]] = processor.tokenizer.pad_token_id
    with pytest.raises(ValueError, match=r"audio placeholder tokens .* but the audio gives"):
        model(input_ids=ids, input_features=batch["input_features"], input_features_mask=batch["input_features_mask"])


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_batched_equals_single(make_model, processor, frontend, padding_side):
    model = make_model("qwen2", frontend)
    clips = _clips()
    batch = processor(audio=clips, sampling_rate=16_000, padding_side=padding_side)
    batched_logits = model(**batch).logits
    for i, clip in enumerate(clips):
        single = processor(audio=[clip], sampling_rate=16_000)
        single_logits = model(**single).logits[0]
        real = batch["attention_mask"][i].bool()
        torch.testing.assert_close(batched_logits[i][real], single_logits, atol=1e-5, rtol=1e-4)


def test_loss_with_num_items_in_batch_matches_full_batch(make_model, processor):
    """Gradient accumulation: micro-batch losses normalised by the global token count add up to the batch loss."""
    model = make_model()
    clips, texts = _clips(), ["one two three", "nine", "zero four"]
    full = processor(audio=clips, sampling_rate=16_000, text_target=texts, padding_side="right")
    full_loss = model(**full).loss
    parts = [
        processor(audio=clips[:1], sampling_rate=16_000, text_target=texts[:1], padding_side="right"),
        processor(audio=clips[1:], sampling_rate=16_000, text_target=texts[1:], padding_side="right"),
    ]
    num_items = sum(int((p["labels"][:, 1:] != -100).sum()) for p in parts)
    summed = sum(model(**p, num_items_in_batch=torch.tensor(num_items)).loss for p in parts)
    torch.testing.assert_close(summed, full_loss, atol=1e-5, rtol=1e-5)


def test_labels_mask_prompt_and_padding(processor):
    batch = processor(audio=_clips()[:2], sampling_rate=16_000, text_target=["one", "two three"])
    labels, ids, mask = batch["labels"], batch["input_ids"], batch["attention_mask"]
    assert (labels[mask == 0] == -100).all()
    assert (labels[ids == processor.audio_token_id] == -100).all()
    eos = processor.tokenizer.eos_token_id
    for row in range(2):
        targets = labels[row][labels[row] != -100].tolist()
        assert targets[-1] == eos
        assert processor.tokenizer.decode(targets[:-1]).strip() == ["one", "two three"][row]


def test_sdpa_matches_eager(processor, make_model, tmp_path):
    model = make_model("llama")
    model.save_pretrained(tmp_path)
    batch = processor(audio=_clips(), sampling_rate=16_000)
    from modeling_mel_llm import MelLLMForSpeechLM

    eager = MelLLMForSpeechLM.from_pretrained(tmp_path, attn_implementation="eager")
    sdpa = MelLLMForSpeechLM.from_pretrained(tmp_path, attn_implementation="sdpa")
    assert sdpa.language_model.config._attn_implementation == "sdpa"
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(eager(**batch).logits[real], sdpa(**batch).logits[real], atol=1e-5, rtol=1e-4)


def test_dtype_and_device_map_load_arguments(make_model, processor, tmp_path):
    from modeling_mel_llm import MelLLMForSpeechLM

    make_model().save_pretrained(tmp_path)
    model = MelLLMForSpeechLM.from_pretrained(tmp_path, dtype=torch.bfloat16, device_map="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.device.type == "cpu"
    output = model(**processor(audio=_clips()[:1], sampling_rate=16_000))
    assert output.logits.dtype == torch.bfloat16
    assert torch.isfinite(output.logits.float()).all()


def test_gradient_checkpointing_gives_the_same_gradients(make_model, processor):
    batch = processor(audio=_clips(), sampling_rate=16_000, text_target=["one", "two", "three"])
    grads = []
    for checkpointing in (False, True):
        model = make_model("phi3", "conv").train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.language_model.is_activation_checkpointing
        model(**batch).loss.backward()
        grads.append(model.multi_modal_projector.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("frontend", ["conv", "encoder"])
def test_save_load_is_bit_identical_and_safetensors_only(make_model, processor, tmp_path, frontend):
    from modeling_mel_llm import MelLLMForSpeechLM

    model = make_model("qwen2", frontend, tie_word_embeddings=True)
    model.fit_feature_normalization(*processor.feature_extractor(_clips(), sampling_rate=16_000).values())
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    loaded = MelLLMForSpeechLM.from_pretrained(tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    batch = processor(audio=_clips(), sampling_rate=16_000)
    assert torch.equal(model(**batch).logits, loaded(**batch).logits)


def test_fit_feature_normalization_standardises_frames(make_model, processor):
    model = make_model()
    features = processor.feature_extractor(_clips(), sampling_rate=16_000)
    model.fit_feature_normalization(features["input_features"], features["input_features_mask"])
    normalised = model.audio_frontend.norm(features["input_features"])[features["input_features_mask"]]
    torch.testing.assert_close(normalised.mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalised.std(0), torch.ones(80), atol=1e-3, rtol=0)


def test_bad_feature_shape_and_too_long_input(make_model, processor):
    model = make_model(max_position_embeddings=64)
    with pytest.raises(ValueError, match=r"input_features must have shape \(batch, frames, 80\)"):
        model.get_audio_features(torch.zeros(1, 50, 40))
    long_batch = processor(audio=[np.zeros(16_000 * 8, dtype=np.float32)], sampling_rate=16_000)
    with pytest.raises(ValueError, match=r"supports 64 .*chunk_length_s"):
        model(**long_batch)


def test_from_text_model_wraps_a_saved_causal_lm(processor, tmp_path):
    from transformers import AutoModelForCausalLM

    from modeling_mel_llm import MelLLMForSpeechLM
    from training.tiny import tiny_text_config

    torch.manual_seed(0)
    text_model = AutoModelForCausalLM.from_config(tiny_text_config("qwen2", vocab_size=300))
    text_model.save_pretrained(tmp_path)
    model = MelLLMForSpeechLM.from_text_model(str(tmp_path), processor)
    assert model.language_model.get_input_embeddings().num_embeddings == len(processor.tokenizer)
    assert model.config.audio_token_id == processor.audio_token_id
    reference = text_model.state_dict()["model.layers.0.mlp.down_proj.weight"]
    assert torch.equal(model.language_model.state_dict()["model.layers.0.mlp.down_proj.weight"], reference)
    assert not model.multi_modal_projector.weight.is_meta
    output = model(**processor(audio=_clips()[:1], sampling_rate=16_000))
    assert torch.isfinite(output.logits).all()


def test_encoder_masks_padding_inside_the_conformer(make_model, processor):
    """Padded patches must not reach real ones through attention: the conformer ignores what the padding holds."""
    model = make_model("llama", "encoder")
    features = processor.feature_extractor(_clips((16_000, 4_321)), sampling_rate=16_000)
    mask = features["input_features_mask"]
    normalised = model.audio_frontend.norm(features["input_features"]).masked_fill(~mask[..., None], 0)
    patches, patch_mask = model.audio_frontend.subsampling(normalised, mask)
    assert not patch_mask.all()
    clean = model.audio_frontend.encoder(patches, patch_mask)
    noise = 5 * torch.randn(patches.shape, generator=torch.Generator().manual_seed(0))  # not constant: LayerNorm
    noisy = model.audio_frontend.encoder(torch.where(patch_mask[..., None], patches, noise), patch_mask)
    torch.testing.assert_close(noisy[patch_mask], clean[patch_mask], atol=1e-5, rtol=1e-4)


def test_frontend_parameter_counts(make_model):
    """Counts by part, checked against the layer shapes of the tiny config (F=64, C=32, FFN=64, 4 heads, 2 blocks)."""
    width, channels, ffn, heads, blocks, kernel, distance = 64, 32, 64, 4, 2, 3, 50
    conv = (
        (9 * channels + channels)
        + 2 * (10 * channels + channels * channels + channels)
        + (channels * 10 * width + width)
    )
    half_step_ffn = 2 * width + (width * 2 * ffn + 2 * ffn) + (ffn * width + width)
    attention = 4 * (width * width + width)
    conv_module = (
        2 * width
        + 2 * width
        + (width * 2 * width + 2 * width)
        + (kernel * width + width)
        + 2 * (width * width + width)
    )
    block = 2 * half_step_ffn + attention + conv_module + 2 * 2 * width
    projector = width * 64 + 64
    encoder = make_model("llama", "encoder").frontend_parameter_counts()
    assert encoder == {
        "conv": conv,
        "encoder": blocks * block + 2 * distance * heads,
        "projector": projector,
        "total": conv + blocks * block + 2 * distance * heads + projector,
    }
    assert make_model("llama", "conv").frontend_parameter_counts() == {
        "conv": conv,
        "encoder": 0,
        "projector": projector,
        "total": conv + projector,
    }
    stack = make_model("llama", "stack").frontend_parameter_counts()
    assert stack == {"conv": 0, "encoder": 0, "projector": 640 * 64 + 64, "total": 640 * 64 + 64}


def test_encoder_chunks_keep_batched_equal_to_single(make_model, processor):
    """With 4-token chunks the clips (13, 8 and 4 patches) span several chunks, some padded, in a batch."""
    model = make_model("llama", "encoder")
    model.audio_frontend.encoder.chunk_length = 4
    clips = _clips()
    features = processor.feature_extractor(clips, sampling_rate=16_000)
    audio = model.get_audio_features(features["input_features"], features["input_features_mask"])
    batched, patch_mask = audio.last_hidden_state, audio.patch_mask
    whole_clip = make_model("llama", "encoder").get_audio_features(features["input_features"][:1]).last_hidden_state[0]
    assert not torch.allclose(batched[0], whole_clip, atol=1e-3)  # the chunking changes the output
    for i, clip in enumerate(clips):
        single = processor.feature_extractor([clip], sampling_rate=16_000)
        alone = model.get_audio_features(single["input_features"], single["input_features_mask"]).last_hidden_state
        torch.testing.assert_close(batched[i][patch_mask[i]], alone[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["asr_stack", "tts_conv"])
def test_models_saved_before_the_redesign_load_and_give_identical_outputs(name):
    """Tiny checkpoints saved by commit 49b21fd (legacy training fields in config.json, tts_text_units in the
    processor) load, keep none of those fields, and reproduce that code's logits and speech bit for bit."""
    from safetensors.torch import load_file

    from processing import MelLLMProcessor

    folder = REPO_ROOT / "tests" / "fixtures" / "pre_redesign" / name
    model = MelLLMForSpeechLM.from_pretrained(folder).eval()
    assert "ctc_loss_weight" not in model.config.to_dict()
    assert "tts_kl_weight" not in model.config.to_dict()
    expected = load_file(folder / "expected_outputs.safetensors")
    asr = {key: expected[key] for key in ("input_ids", "attention_mask", "labels", "input_features")}
    asr["input_features_mask"] = expected["input_features_mask"].bool()
    with torch.no_grad():
        assert torch.equal(model(**asr).logits, expected["logits"])
    if not model.config.tts_head:
        return
    tts = {key.removeprefix("tts_"): value for key, value in expected.items() if key.startswith("tts_")}
    tts.pop("logits")
    tts["mel_target_mask"] = tts["mel_target_mask"].bool()
    processor = MelLLMProcessor.from_pretrained(folder)
    with torch.no_grad():
        assert torch.equal(model(**tts).logits, expected["tts_logits"])
        assert torch.equal(model.teacher_forced_speech(**tts).mel_features, expected["teacher_forced_mel"])
        speech = model.generate_speech(**processor.tts_inputs(["one two"]), max_new_frames=48, temperature=0.0)
        assert torch.equal(speech.mel_features, expected["generated_mel"])


def test_legacy_config_with_a_removed_inference_option_is_refused():
    with pytest.raises(ValueError, match=r"utterance_norm='mean'.*removed after commit 49b21fd"):
        MelLLMConfig(utterance_norm="mean")
    assert "utterance_norm" not in MelLLMConfig(utterance_norm="none").to_dict()
