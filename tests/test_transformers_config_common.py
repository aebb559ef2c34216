"""transformers' own config tests (ConfigTester, vendored from its 5.23.0 sdist) on MelLLMConfig, both front ends."""

import unittest

from parameterized import parameterized

from modeling_mel_llm import MelLLMConfig
from tests.transformers_common.configuration_common import ConfigTester
from training.tiny import tiny_text_config


class MelLLMModelTester:
    """What transformers' ConfigTester asks of a model test's `model_tester`: a config with non-default values."""

    def get_config(self) -> MelLLMConfig:
        return MelLLMConfig(text_config=tiny_text_config("llama", vocab_size=99), audio_token_id=7, frames_per_patch=4)


class MelLLMConfigTest(unittest.TestCase):
    model_tester = MelLLMModelTester()

    @parameterized.expand(["stack", "conv"])
    def test_config(self, frontend: str):
        # As transformers' Qwen2-Audio and Voxtral tests do: the default backbone, top-level settings as kwargs.
        tester = ConfigTester(
            self,
            config_class=MelLLMConfig,
            has_text_modality=False,  # the vocabulary is the backbone's: `text_config.vocab_size`
            common_properties=["audio_token_id", "frames_per_patch", "num_mel_bins"],
            frontend=frontend,
            audio_token_id=7,
        )
        tester.run_common_tests()

    def test_a_composite_config_with_a_chosen_backbone_round_trips(self):
        text_config = tiny_text_config("qwen2", vocab_size=99)
        config = MelLLMConfig(text_config=text_config, audio_token_id=7, frontend="conv")
        tester = ConfigTester(self, config_class=MelLLMConfig, has_text_modality=False, **config.to_diff_dict())
        tester.create_and_test_config_from_and_save_pretrained()
        tester.create_and_test_config_from_and_save_pretrained_composite()
        tester.create_and_test_config_to_json_file()
