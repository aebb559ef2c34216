"""Vocoders: Griffin-Lim inverts the extractor's log-mel; the bundled HiFi-GAN loads from `vocoder/`."""

import numpy as np
import torch
from transformers import SpeechT5HifiGan

from processing import MelLLMFeatureExtractor
from processing.vocoder_mel_llm import VOCODER_SUBFOLDER, MelLLMGriffinLim, MelLLMHifiGan, load_vocoder


def _tone(seconds: float = 0.5, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1200 * t)).astype(np.float32)


def test_griffin_lim_rebuilds_a_two_tone_signal():
    extractor = MelLLMFeatureExtractor()
    features = extractor([_tone()], sampling_rate=16_000)["input_features"][0]  # (T, M)
    waveform = MelLLMGriffinLim(extractor)(features)
    assert waveform.shape == ((features.shape[0] - 1) * 160 + 400,)  # gives back exactly T frames
    spectrum = np.abs(np.fft.rfft(waveform.numpy()))
    freqs = np.fft.rfftfreq(len(waveform), 1 / 16_000)
    strongest = freqs[np.argsort(spectrum)[-20:]]
    assert np.any(np.abs(strongest - 440) < 10)
    assert np.any(np.abs(strongest - 1200) < 10)
    assert np.all((np.abs(strongest - 440) < 30) | (np.abs(strongest - 1200) < 30))
    rebuilt = extractor([waveform.numpy()], sampling_rate=16_000)["input_features"][0]
    loud = features > features.max() - 7  # within ~30 dB of the peak
    assert (rebuilt - features)[loud].abs().mean() < 1.0
    profile, rebuilt_profile = features.mean(0), rebuilt.mean(0)
    assert torch.corrcoef(torch.stack([profile, rebuilt_profile]))[0, 1] > 0.95


def test_griffin_lim_magnitude_inverts_the_filter_bank():
    """The non-negative inverse of the mel filter bank reproduces the log-mel almost exactly (phase aside)."""
    extractor = MelLLMFeatureExtractor()
    features = extractor([_tone()], sampling_rate=16_000)["input_features"]
    vocoder = MelLLMGriffinLim(extractor)
    power = (vocoder.magnitude(features).transpose(1, 2) * vocoder.emphasis * 32768) ** 2
    rebuilt = torch.log((power @ extractor._mel_filters).clamp(min=1.0))
    assert (rebuilt - features).abs().mean() < 0.1


def test_hifigan_shape_and_bundled_save_load(tmp_path):
    torch.manual_seed(0)
    config = MelLLMHifiGan.build_config(upsample_initial_channel=32, resblock_kernel_sizes=[3])
    config.resblock_dilation_sizes = [[1, 3]]
    vocoder = MelLLMHifiGan(SpeechT5HifiGan(config)).eval()
    log_mel = torch.randn(2, 30, 80) + 5
    with torch.no_grad():
        waveform = vocoder(log_mel)
    assert waveform.shape == (2, 30 * 160)
    vocoder.generator.save_pretrained(tmp_path / VOCODER_SUBFOLDER)
    loaded = load_vocoder(tmp_path, MelLLMFeatureExtractor())
    assert isinstance(loaded, MelLLMHifiGan)
    with torch.no_grad():
        assert torch.equal(loaded(log_mel), waveform)
    assert isinstance(load_vocoder(tmp_path / "elsewhere", MelLLMFeatureExtractor()), MelLLMGriffinLim)
