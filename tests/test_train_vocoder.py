"""HiFi-GAN training: discriminator shapes, a few steps on real clips, and the bundled vocoder in a model folder."""

import numpy as np
import torch

from processing import MelLLMFeatureExtractor, MelLLMHifiGan, load_vocoder
from tests.conftest import FSDD_DIR
from training.tools.hifigan import HifiGanDiscriminators
from training.tools.train_vocoder import main


def test_discriminators_score_every_period_and_scale():
    outputs = HifiGanDiscriminators(width=4)(torch.randn(2, 4000))
    assert len(outputs) == 5 + 3
    for score, features in outputs:
        assert score.shape[0] == 2
        assert len(features) >= 5


def test_a_few_vocoder_steps_save_a_loadable_vocoder(tmp_path):
    model_dir = tmp_path / "model"
    result = main(
        [
            "--model",
            str(model_dir),
            "--manifest",
            str(FSDD_DIR / "manifest.jsonl"),
            "--max-clips",
            "8",
            "--steps",
            "4",
            "--batch-size",
            "2",
            "--segment-frames",
            "16",
            "--channels",
            "16",
            "--resblock-kernels",
            "3",
            "--disc-width",
            "2",
            "--log-every",
            "2",
        ]
    )
    assert all(np.isfinite([h["mel_l1"], h["g"], h["d"]]).all() for h in result["history"])
    vocoder = load_vocoder(model_dir, MelLLMFeatureExtractor())
    assert isinstance(vocoder, MelLLMHifiGan)
    assert vocoder.generator.mean.abs().sum() > 0  # statistics of the training clips, not the zero default
    with torch.no_grad():
        assert vocoder(torch.randn(10, 80) + 5).shape == (10 * 160,)
