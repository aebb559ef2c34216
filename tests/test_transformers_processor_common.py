"""transformers' own processor tests (ProcessorTesterMixin, vendored from its 5.23.0 sdist) on MelLLMProcessor."""

import unittest

from processing import MelLLMFeatureExtractor, MelLLMProcessor
from tests.transformers_common.processing_common import ProcessorTesterMixin
from training.tiny import build_tiny_processor


class MelLLMProcessorTest(ProcessorTesterMixin, unittest.TestCase):
    processor_class = MelLLMProcessor
    audio_input_name = "input_features"

    @classmethod
    def _setup_feature_extractor(cls):
        return MelLLMFeatureExtractor()

    @classmethod
    def _setup_tokenizer(cls):
        return build_tiny_processor().tokenizer
