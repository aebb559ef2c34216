"""transformers' own model tests (ModelTesterMixin, vendored from its 5.23.0 sdist) on MelLLMForSpeechLM, with a
tester shaped like transformers' Qwen2-Audio one, for both encoder-free front ends."""

import unittest

import torch

from modeling_mel_llm import MelLLMConfig, MelLLMForSpeechLM
from tests.transformers_common.modeling_common import ModelTesterMixin, floats_tensor, ids_tensor


class MelLLMModelTester:
    """A tiny Llama backbone; each row holds `num_audio_tokens` placeholders for `feat_seq_length` mel frames."""

    def __init__(self, parent, frontend: str = "stack"):
        self.parent = parent
        self.frontend = frontend
        self.audio_token_id = 0
        self.frames_per_patch = 4
        self.num_mel_bins = 16
        self.feat_seq_length = 20
        self.num_audio_tokens = 5  # ceil(20 / 4)
        self.seq_length = 12
        self.batch_size = 3
        self.is_training = True
        self.text_config = {
            "model_type": "llama",
            "vocab_size": 99,
            "hidden_size": 32,
            "intermediate_size": 36,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 64,
            "initializer_range": 0.02,
        }
        self.audio_config = {"num_hidden_layers": 0}  # encoder-free: no audio layers, one audio state (the patches)
        self.vocab_size = self.text_config["vocab_size"]
        self.hidden_size = self.text_config["hidden_size"]
        self.num_hidden_layers = self.text_config["num_hidden_layers"]
        self.num_attention_heads = self.text_config["num_attention_heads"]
        self.encoder_seq_length = self.seq_length

    def get_config(self) -> MelLLMConfig:
        return MelLLMConfig(
            text_config=self.text_config,
            audio_token_id=self.audio_token_id,
            frontend=self.frontend,
            frames_per_patch=self.frames_per_patch,
            num_mel_bins=self.num_mel_bins,
            conv_channels=8,
            conv_output_size=16,
        )

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size - 1) + 1
        input_ids[:, 1 : 1 + self.num_audio_tokens] = self.audio_token_id
        attention_mask = torch.ones_like(input_ids)
        attention_mask[:, :1] = 0  # left padding
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "input_features": floats_tensor([self.batch_size, self.feat_seq_length, self.num_mel_bins]),
            "input_features_mask": torch.ones(self.batch_size, self.feat_seq_length, dtype=torch.bool),
        }
        return config, inputs


class MelLLMStackModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (MelLLMForSpeechLM,)
    _is_composite = True
    frontend = "stack"

    def setUp(self):
        self.model_tester = MelLLMModelTester(self, self.frontend)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        """transformers adds causal-LM labels for the classes in its own tables; this model is registered at import
        (not in those tables), so its labels are added here the same way: one per token."""
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels:
            shape = (self.model_tester.batch_size, self.model_tester.seq_length)
            inputs_dict["labels"] = torch.zeros(shape, dtype=torch.long)
        return inputs_dict

    @unittest.skip(reason="transformers' GenerationTesterMixin is not in its sdist (see transformers_common/)")
    def test_generation_tester_mixin_inheritance(self):
        pass


class MelLLMConvModelTest(MelLLMStackModelTest):
    frontend = "conv"
