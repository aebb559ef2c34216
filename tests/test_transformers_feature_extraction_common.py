"""transformers' own feature-extractor tests (SequenceFeatureExtractionTestMixin, vendored from its 5.23.0 sdist)
on MelLLMFeatureExtractor, with a tester shaped like the one transformers' Whisper tests use."""

import random
import unittest

import numpy as np

from processing import MelLLMFeatureExtractor
from tests.transformers_common.sequence_feature_extraction_common import SequenceFeatureExtractionTestMixin


def floats_list(shape: tuple[int, int], scale: float = 1.0, seed: int = 0) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.random() * scale for _ in range(shape[1])] for _ in range(shape[0])]


class MelLLMFeatureExtractionTester:
    """Batches of log-mel-shaped inputs (frames × feature_size) of growing lengths, for the mixin's pad tests."""

    def __init__(self, batch_size: int = 7, min_seq_length: int = 40, max_seq_length: int = 200):
        self.batch_size = batch_size
        self.min_seq_length = min_seq_length
        self.max_seq_length = max_seq_length
        self.seq_length_diff = (max_seq_length - min_seq_length) // (batch_size - 1)
        self.feature_size = 10
        self.sampling_rate = 16_000
        self.padding_value = 0.0
        self.frames_per_patch = 4

    def prepare_feat_extract_dict(self) -> dict:
        return {
            "feature_size": self.feature_size,
            "sampling_rate": self.sampling_rate,
            "padding_value": self.padding_value,
            "frames_per_patch": self.frames_per_patch,
        }

    def prepare_inputs_for_common(self, equal_length: bool = False, numpify: bool = False) -> list:
        if equal_length:
            inputs = [floats_list((self.max_seq_length, self.feature_size), seed=i) for i in range(self.batch_size)]
        else:
            lengths = range(self.min_seq_length, self.max_seq_length, self.seq_length_diff)
            inputs = [floats_list((length, self.feature_size), seed=length) for length in lengths]
        return [np.asarray(x) for x in inputs] if numpify else inputs


class MelLLMFeatureExtractionTest(SequenceFeatureExtractionTestMixin, unittest.TestCase):
    feature_extraction_class = MelLLMFeatureExtractor

    def setUp(self):
        self.feat_extract_tester = MelLLMFeatureExtractionTester()
