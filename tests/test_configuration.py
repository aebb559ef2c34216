"""MelLLMConfig: nested backbone config, serialisation, validation."""

import pytest
from transformers import LlamaConfig, Phi3Config, Qwen2Config

from modeling_mel_llm import MelLLMConfig
from training.tiny import tiny_text_config


@pytest.mark.parametrize(
    ("family", "config_class"), [("llama", LlamaConfig), ("qwen2", Qwen2Config), ("phi3", Phi3Config)]
)
def test_text_config_from_dict_and_object(family, config_class):
    text_config = tiny_text_config(family)
    from_object = MelLLMConfig(text_config=text_config, audio_token_id=3)
    from_dict = MelLLMConfig(text_config=text_config.to_dict(), audio_token_id=3)
    assert isinstance(from_object.text_config, config_class)
    assert isinstance(from_dict.text_config, config_class)
    assert from_dict.hidden_size == text_config.hidden_size == 64


def test_round_trip_keeps_every_field(tmp_path):
    config = MelLLMConfig(
        text_config=tiny_text_config("qwen2"), audio_token_id=7, frontend="conv", frames_per_patch=4, conv_channels=16
    )
    config.save_pretrained(tmp_path)
    loaded = MelLLMConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.frontend == "conv"
    assert loaded.frames_per_patch == 4
    assert loaded.auto_map["AutoModelForSpeechSeq2Seq"] == "modeling_mel_llm.MelLLMForSpeechLM"
    assert "automatic-speech-recognition" in loaded.custom_pipelines


def test_conformer_fields_round_trip(tmp_path):
    config = MelLLMConfig(
        text_config=tiny_text_config(),
        frontend="encoder",
        conformer_layers=3,
        conformer_attention_heads=2,
        conformer_ffn_dim=48,
        conformer_conv_kernel_size=5,
        projector_type="mlp",
    )
    config.save_pretrained(tmp_path)
    loaded = MelLLMConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert (loaded.conformer_layers, loaded.conformer_conv_kernel_size, loaded.projector_type) == (3, 5, "mlp")


def test_the_config_reads_as_decoder_only(tmp_path):
    """No `encoder_*` keys (transformers takes them for an encoder-decoder model); configs saved with the old conformer
    names load into the new ones."""
    config = MelLLMConfig(text_config=tiny_text_config(), frontend="encoder", conformer_layers=3)
    assert not config.is_encoder_decoder
    assert [key for key in config.to_dict() if key.startswith("encoder")] == []
    old_style = {**config.to_dict(), "encoder_layers": 2, "encoder_ffn_dim": 40}
    del old_style["conformer_layers"], old_style["conformer_ffn_dim"]
    loaded = MelLLMConfig.from_dict(old_style)
    assert (loaded.conformer_layers, loaded.conformer_ffn_dim) == (2, 40)
    assert [key for key in loaded.to_dict() if key.startswith("encoder")] == []


def test_default_backbone_is_llama():
    assert isinstance(MelLLMConfig().text_config, LlamaConfig)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frontend": "encoderless"}, "frontend='encoderless' is not supported"),
        ({"frames_per_patch": 0}, "frames_per_patch must be positive"),
        ({"frontend": "conv", "frames_per_patch": 6}, "power of two"),
        ({"frontend": "conv", "frames_per_patch": 1}, "power of two"),
        ({"num_mel_bins": 0}, "num_mel_bins must be positive"),
        ({"frontend": "encoder", "frames_per_patch": 6}, "frontend='encoder' subsamples by stride-2"),
        ({"frontend": "encoder", "conformer_layers": 0}, "conformer_layers must be positive"),
        ({"frontend": "encoder", "conformer_ffn_dim": 0}, "conformer_ffn_dim must be positive"),
        ({"frontend": "encoder", "conformer_conv_kernel_size": 0}, "conformer_conv_kernel_size must be positive"),
        ({"frontend": "encoder", "conformer_chunk_length": 0}, "conformer_chunk_length must be positive"),
        ({"frontend": "encoder", "conv_output_size": 30, "conformer_attention_heads": 4}, "must divide the conformer"),
        ({"projector_type": "mlp3"}, "projector_type='mlp3' is not supported"),
        ({"audio_token_id": 10_000}, "outside the backbone vocabulary"),
    ],
)
def test_bad_values_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MelLLMConfig(text_config=tiny_text_config(vocab_size=320), **kwargs)
