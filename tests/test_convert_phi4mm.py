"""training/tools/convert_phi4mm.py on a tiny random Phi-4-multimodal built here, in both checkpoint layouts."""

import json
import math
import re

import numpy as np
import pytest
import torch
from peft import LoraConfig, PeftModel
from safetensors.torch import load_file, save_file
from transformers import Phi4MultimodalConfig, Phi4MultimodalForCausalLM

from modeling_mel_llm import MelLLMForSpeechLM
from processing import MelLLMFeatureExtractor, MelLLMProcessor
from training.tiny import build_tokenizer
from training.tools.convert_phi4mm import convert, main, mapped_state_dict, mel_llm_config
from training.tools.phi4mm_keys import map_keys


RANK, ALPHA = 4, 8
LORA_TARGETS = r"model.layers.\d+.((self_attn.(qkv|o)_proj)|(mlp.(gate_up|down)_proj))"
ROPE = {
    "rope_type": "longrope",
    "rope_theta": 10000.0,
    "partial_rotary_factor": 0.75,  # as Phi-4-mini: 6 of 8 rotary pairs per 16-dim head
    "short_factor": [1.0, 1.1, 1.2, 1.3, 1.4, 1.5],
    "long_factor": [2.0, 2.1, 2.2, 2.3, 2.4, 2.5],
}


def tiny_phi4mm_config(tokenizer) -> Phi4MultimodalConfig:
    return Phi4MultimodalConfig(
        vocab_size=400,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        original_max_position_embeddings=64,
        tie_word_embeddings=True,
        rope_parameters=dict(ROPE),
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=[tokenizer.eos_token_id],
        audio_config={
            "hidden_size": 32,
            "intermediate_size": 48,
            "num_blocks": 2,
            "num_attention_heads": 4,
            "ext_pw_out_channel": 32,
            "depthwise_separable_out_channel": 32,
            "nemo_conv_channels": 16,
            "bias_max_distance": 50,
            "audio_token_id": tokenizer.convert_tokens_to_ids("<|endoftext11|>"),
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
            "crop_size": 28,
            "image_token_id": tokenizer.convert_tokens_to_ids("<|endoftext10|>"),
        },
    )


@pytest.fixture(scope="module")
def phi(tmp_path_factory):
    """A tiny random Phi-4-MM saved in transformers' layout with a speech-LoRA adapter, plus its tensors."""
    folder = tmp_path_factory.mktemp("phi4mm")
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|endoftext10|>", "<|endoftext11|>", "<|end|>"]})
    torch.manual_seed(0)
    model = Phi4MultimodalForCausalLM(tiny_phi4mm_config(tokenizer)).eval()
    cmvn = model.model.embed_tokens_extend.audio_embed.encoder.encoder_embedding
    with torch.no_grad():  # no zero or one left anywhere (biases, norms, CMVN), so a dropped weight shows
        for tensor in model.parameters():
            tensor.add_(0.05 * torch.randn_like(tensor))
        cmvn.global_mean.copy_(8.0 + torch.randn(80))
        cmvn.global_invstd.copy_(0.2 + 0.05 * torch.rand(80))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    lora = {}
    for name, module in model.named_modules():
        if re.fullmatch(LORA_TARGETS, name):
            lora[f"{name}.lora_A.weight"] = 0.1 * torch.randn(RANK, module.in_features)
            lora[f"{name}.lora_B.weight"] = 0.1 * torch.randn(module.out_features, RANK)
    adapter = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.01, target_modules=LORA_TARGETS)
    adapter.save_pretrained(folder / "speech-lora")
    save_file(lora, folder / "speech-lora" / "adapter_model.safetensors")
    return folder, model, lora, tokenizer


@pytest.fixture(scope="module")
def reference(phi):
    """Phi-4-MM's text logits without and with the speech LoRA (loaded by transformers' own adapter code)."""
    folder, model, _, _ = phi
    input_ids = torch.randint(4, 300, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = model(input_ids=input_ids).logits
        with_lora = Phi4MultimodalForCausalLM.from_pretrained(folder).eval()
        with_lora.load_adapter(str(folder / "speech-lora"), adapter_name="speech")
        with_lora.set_adapter("speech")
        speech = with_lora(input_ids=input_ids).logits
    assert not torch.allclose(base, speech, atol=1e-3)
    return input_ids, base, speech


def mel_clip(seconds: float = 1.3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    clip = (0.1 * rng.standard_normal(int(16_000 * seconds))).astype(np.float32)
    return MelLLMFeatureExtractor()([clip], sampling_rate=16_000)


def test_transformers_layout_accounts_for_every_key_and_keeps_text_logits(phi, reference, tmp_path):
    folder, _, lora, _ = phi
    input_ids, base, speech = reference
    key_map = convert(str(folder), tmp_path, frontend="conv")
    source_keys = set(load_file(folder / "model.safetensors"))
    assert set(key_map.mapped) | set(key_map.dropped) == source_keys
    assert not set(key_map.mapped) & set(key_map.dropped)
    assert {k.removeprefix("speech-lora/") for k in key_map.speech_lora} == set(lora)
    reasons = set(key_map.dropped.values())
    assert any("conformer" in r for r in reasons)
    assert any("vision encoder" in r for r in reasons)
    assert not any(".encoders." in k for k in key_map.mapped.values())
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))

    model = MelLLMForSpeechLM.from_pretrained(tmp_path).eval()
    assert model.config.frontend == "conv"
    assert model.config.projector_type == "mlp"
    assert type(model.language_model).__name__ == "Phi3ForCausalLM"
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=input_ids).logits, base, atol=1e-5, rtol=1e-5)
        adapted = PeftModel.from_pretrained(model, tmp_path / "speech-lora").eval()
        torch.testing.assert_close(adapted(input_ids=input_ids).logits, speech, atol=1e-5, rtol=1e-5)


def test_conv_frontend_and_projector_match_phi4mm(phi, tmp_path):
    folder, phi_model, _, _ = phi
    convert(str(folder), tmp_path, frontend="conv", lora="drop")
    assert not (tmp_path / "speech-lora").exists()
    model = MelLLMForSpeechLM.from_pretrained(tmp_path).eval()
    features = mel_clip()
    audio_embed = phi_model.model.embed_tokens_extend.audio_embed
    with torch.no_grad():
        expected, _ = audio_embed.encoder.embed(
            audio_embed.encoder.encoder_embedding(features["input_features"]), None
        )
        patches, _ = model.audio_frontend(features["input_features"], features["input_features_mask"])
        torch.testing.assert_close(patches, expected, atol=1e-5, rtol=1e-5)
        projected = audio_embed.down_proj_for_speech(torch.nn.functional.gelu(audio_embed.up_proj_for_speech(patches)))
        torch.testing.assert_close(model.multi_modal_projector(patches), projected, atol=1e-5, rtol=1e-5)


def test_encoder_frontend_reproduces_phi4mm_speech_logits(phi, tmp_path):
    """With the conformer kept, a prompt with audio gives Phi-4-MM's own logits (audio embedding, scatter, LLM)."""
    folder, phi_model, _, _ = phi
    convert(str(folder), tmp_path, frontend="encoder")
    model = MelLLMForSpeechLM.from_pretrained(tmp_path).eval()
    processor = MelLLMProcessor.from_pretrained(tmp_path)
    assert processor.audio_token == "<|endoftext11|>"
    assert processor.audio_token_id == model.config.audio_token_id == phi_model.config.audio_config.audio_token_id
    assert model.frontend_parameter_counts()["encoder"] == sum(
        p.numel()
        for n, p in phi_model.named_parameters()
        if re.search(r"audio_embed\.encoder\.(encoders|relative)", n)
    )
    clip = (0.1 * np.random.default_rng(3).standard_normal(20_000)).astype(np.float32)
    inputs = processor(audio=[clip], sampling_rate=16_000)
    num_tokens = math.ceil(inputs["input_features"].shape[1] / 8)
    assert int((inputs["input_ids"] == processor.audio_token_id).sum()) == num_tokens
    with torch.no_grad():
        expected = phi_model(
            input_ids=inputs["input_ids"],
            audio_input_features=inputs["input_features"],
            audio_embed_sizes=torch.tensor([num_tokens]),
        ).logits
        logits = model(**inputs).logits
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def original_layout(phi, folder) -> set[str]:
    """Write the tiny model as the remote-code checkpoint: LoRA inside the shards, old module names and config."""
    source, model, lora, tokenizer = phi
    folder.mkdir()
    renames = [
        (r"(feed_forward_(?:in|out))\.gate_up_proj\.", r"\1.net.0.linear."),
        (r"(feed_forward_(?:in|out))\.down_proj\.", r"\1.net.2."),
        (r"(encoders\.\d+\.self_attn)\.(q|k|v)_proj\.", r"\1.linear_\2."),
        (r"(encoders\.\d+\.self_attn)\.o_proj\.", r"\1.linear_out."),
        (r"audio_embed\.up_proj_for_speech\.", "audio_embed.audio_projection.speech.0."),
        (r"audio_embed\.down_proj_for_speech\.", "audio_embed.audio_projection.speech.2."),
        (r"audio_embed\.up_proj_for_vision_speech\.", "audio_embed.audio_projection.vision.0."),
        (r"audio_embed\.down_proj_for_vision_speech\.", "audio_embed.audio_projection.vision.2."),
        (rf"^({LORA_TARGETS})\.weight$", r"\1.base_layer.weight"),
    ]
    state_dict = {}
    for key, tensor in load_file(source / "model.safetensors").items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        state_dict[key] = tensor
    for key, tensor in lora.items():
        module, ab = key.rsplit(".lora_", 1)
        state_dict[f"{module}.lora_{ab.replace('.weight', '.speech.weight')}"] = tensor
        state_dict[f"{module}.lora_{ab.replace('.weight', '.vision.weight')}"] = torch.randn_like(tensor)
    half = len(state_dict) // 2  # two shards, as the real checkpoint has
    items = sorted(state_dict.items())
    save_file(dict(items[:half]), folder / "model-00001-of-00002.safetensors")
    save_file(dict(items[half:]), folder / "model-00002-of-00002.safetensors")
    config = model.config
    text = {k: getattr(config, k) for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers")}
    rope = {"type": "longrope", "short_factor": ROPE["short_factor"], "long_factor": ROPE["long_factor"]}
    raw = {
        **text,
        "model_type": "phi4mm",
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "max_position_embeddings": config.max_position_embeddings,
        "original_max_position_embeddings": config.original_max_position_embeddings,
        "rope_scaling": rope,
        "rope_theta": ROPE["rope_theta"],
        "partial_rotary_factor": ROPE["partial_rotary_factor"],
        "tie_word_embeddings": True,
        "rms_norm_eps": config.rms_norm_eps,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id[0],
        "pad_token_id": config.pad_token_id,
        "audio_token_id": config.audio_config.audio_token_id,
        "speech_lora": {"r": RANK, "lora_alpha": ALPHA, "dp": 0.01, "layer": LORA_TARGETS},
        "vision_lora": {"r": RANK, "lora_alpha": ALPHA, "dp": 0.0, "layer": LORA_TARGETS},
        "embd_layer": {"audio_embd_layer": {"downsample_rate": 1}, "image_embd_layer": {"crop_size": 28}},
        "audio_processor": {
            "config": {
                "attention_dim": 32,
                "attention_heads": 4,
                "linear_units": 48,
                "num_blocks": 2,
                "kernel_size": 3,
                "input_size": 80,
                "time_reduction": 8,
                "nemo_conv_settings": {"conv_channels": 16},
                "relative_attention_bias_args": {"type": "t5", "t5_bias_max_distance": 50},
            }
        },
    }
    (folder / "config.json").write_text(json.dumps(raw))
    tokenizer.save_pretrained(folder)
    return set(state_dict)


def test_original_layout_with_lora_in_the_shards(phi, reference, tmp_path):
    source_keys = original_layout(phi, tmp_path / "src")
    input_ids, _, speech = reference
    key_map = convert(str(tmp_path / "src"), tmp_path / "out", frontend="encoder", lora="merge")
    assert set(key_map.mapped) | set(key_map.dropped) | set(key_map.speech_lora) == source_keys
    assert sum(r == "vision LoRA" for r in key_map.dropped.values()) == len(phi[2])
    assert any(".encoders." in k for k in key_map.mapped.values())
    model = MelLLMForSpeechLM.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=input_ids).logits, speech, atol=1e-5, rtol=1e-5)
    # The same audio path as the transformers layout: conformer renames and projector renames are right.
    converted = MelLLMForSpeechLM.from_pretrained(tmp_path / "out")
    features = mel_clip(seed=4)
    audio_embed = phi[1].model.embed_tokens_extend.audio_embed
    with torch.no_grad():
        encoded = audio_embed.encoder(features["input_features"], None)
        expected = audio_embed.down_proj_for_speech(torch.nn.functional.gelu(audio_embed.up_proj_for_speech(encoded)))
        audio = converted.get_audio_features(features["input_features"], features["input_features_mask"])
    embeds = audio.last_hidden_state
    torch.testing.assert_close(embeds, expected, atol=1e-5, rtol=1e-5)


def test_unknown_keys_and_wrong_shapes_raise_naming_the_key(phi):
    folder = phi[0]
    source = load_file(folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"neither mapped nor intentionally dropped.*model\.extra_head\.weight"):
        map_keys([*source, "model.extra_head.weight"], keep_encoder=False)
    config = mel_llm_config(json.loads((folder / "config.json").read_text()), "conv")
    key = "model.embed_tokens_extend.audio_embed.up_proj_for_speech.weight"
    source[key] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=re.escape(f"{key}: shape (3, 3), but multi_modal_projector.linear_1.weight")):
        mapped_state_dict(source, map_keys(source, keep_encoder=False), config)


def test_cli_writes_a_loadable_folder(phi, tmp_path, capsys):
    main(["--src", str(phi[0]), "--out", str(tmp_path), "--frontend", "encoder", "--lora", "drop"])
    assert "dropped" in capsys.readouterr().out
    assert MelLLMForSpeechLM.from_pretrained(tmp_path).config.frontend == "encoder"
    assert (tmp_path / "processor_config.json").exists()


def test_encoder_attends_in_500_token_chunks_like_phi4mm(phi, tmp_path):
    """Past 40 s Phi-4-MM runs its conformer on 500-token chunks; 1000 tokens (80 s) must give the same output."""
    folder, phi_model, _, _ = phi
    convert(str(folder), tmp_path, frontend="encoder", lora="drop")
    model = MelLLMForSpeechLM.from_pretrained(tmp_path).eval()
    features = torch.randn(1, 8000, 80, generator=torch.Generator().manual_seed(5)) + 8.0  # 8000 frames → 1000 tokens
    mask = torch.ones(1, 8000, dtype=torch.bool)
    with torch.no_grad():
        expected = phi_model.model.embed_tokens_extend.audio_embed.encoder(features, None)
        patches, _ = model.audio_frontend(features, mask)
    assert expected.shape == patches.shape == (1, 1000, 32)
    torch.testing.assert_close(patches, expected, atol=1e-5, rtol=1e-5)
    model.audio_frontend.encoder.chunk_length = 10_000  # one chunk: now the two must differ
    with torch.no_grad():
        assert not torch.allclose(model.audio_frontend(features, mask)[0], expected, atol=1e-3)
