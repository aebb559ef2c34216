"""Log-mel → waveform for TTS: Griffin-Lim (always available, no weights) or a HiFi-GAN bundled in `vocoder/`.

Shapes: B batch, T mel frames, M mel bins, K FFT bins (257), N samples. The inverse follows the feature extractor's
Phi-4-MM pipeline backwards: log → mel power → linear power (non-negative least squares on the filter bank) →
undo the int16 scale and the pre-emphasis → phase from Griffin-Lim. Used by pipeline_tts_mel_llm.py.
"""

from pathlib import Path

import torch
from torch import nn
from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

from .feature_extraction_mel_llm import HOP_LENGTH, N_FFT, PCM_SCALE, WIN_LENGTH, MelLLMFeatureExtractor


VOCODER_SUBFOLDER = "vocoder"
HIFIGAN_UPSAMPLE_RATES = (5, 4, 4, 2)  # product 160 = one 10 ms hop per mel frame
HIFIGAN_KERNEL_SIZES = (11, 8, 8, 4)  # (k - rate) even, so every transposed conv multiplies the length exactly


class MelLLMGriffinLim(nn.Module):
    """
    Invert `MelLLMFeatureExtractor` log-mel with Griffin-Lim (fast variant, momentum 0.99). Output clips have
    (T - 1)·160 + 400 samples, the length that gives back T frames, aligned with the extractor's frames.

    Args:
        feature_extractor: supplies the filter bank, window and pre-emphasis to undo.
        n_iter (`int`, defaults to 32): Griffin-Lim iterations.
        nnls_iter (`int`, defaults to 30): multiplicative updates refining the filter-bank pseudo-inverse.
    """

    def __init__(self, feature_extractor: MelLLMFeatureExtractor, n_iter: int = 32, nnls_iter: int = 30):
        super().__init__()
        self.n_iter, self.nnls_iter = n_iter, nnls_iter
        self.sampling_rate = feature_extractor.sampling_rate
        filters = feature_extractor._mel_filters.double()  # (K, M)
        self.register_buffer("filters", filters.float(), persistent=False)
        self.register_buffer("filters_pinv", torch.linalg.pinv(filters).float(), persistent=False)  # (M, K)
        self.register_buffer("window", torch.hamming_window(WIN_LENGTH, periodic=False), persistent=False)
        omega = torch.linspace(0, torch.pi, N_FFT // 2 + 1)
        emphasis = (1 - feature_extractor.preemphasis * torch.exp(-1j * omega)).abs()
        self.register_buffer("emphasis", emphasis.clamp(min=0.2).float(), persistent=False)  # (K,)

    def magnitude(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(B, T, M) log-mel → (B, K, T) linear STFT magnitude of the waveform in [-1, 1]."""
        mel = log_mel.float().exp()
        power = (mel @ self.filters_pinv).clamp(min=1e-3)  # (B, T, K)
        target = mel @ self.filters.T
        for _ in range(self.nnls_iter):  # Lee-Seung updates keep the power non-negative
            power = power * target / ((power @ self.filters) @ self.filters.T + 1e-8)
        return (power.sqrt() / PCM_SCALE / self.emphasis).transpose(1, 2)

    def forward(self, log_mel: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """(B, T, M) or (T, M) log-mel → (B, N) or (N,) waveform; `seed` fixes the initial phase."""
        batched = log_mel.ndim == 3
        log_mel = log_mel if batched else log_mel[None]
        magnitude = self.magnitude(log_mel)  # (B, K, T)
        length = (magnitude.shape[-1] - 1) * HOP_LENGTH
        stft_kwargs = {"n_fft": N_FFT, "hop_length": HOP_LENGTH, "win_length": WIN_LENGTH, "window": self.window}
        generator = torch.Generator(device=magnitude.device).manual_seed(seed)
        angles = torch.exp(2j * torch.pi * torch.rand(magnitude.shape, generator=generator, device=magnitude.device))
        previous = torch.zeros_like(angles)
        for _ in range(self.n_iter):
            waveform = torch.istft(magnitude * angles, length=length, **stft_kwargs)
            rebuilt = torch.stft(waveform, return_complex=True, **stft_kwargs)
            accelerated = rebuilt - 0.99 * previous
            angles = accelerated / accelerated.abs().clamp(min=1e-8)
            previous = rebuilt
        waveform = torch.istft(magnitude * angles, length=length, **stft_kwargs)
        # STFT frame t is centred on sample 160·t; the extractor's frame t on 160·t + 200.
        pad = WIN_LENGTH // 2
        waveform = nn.functional.pad(waveform, (pad, pad)).clamp(-1.0, 1.0)
        return waveform if batched else waveform[0]


class MelLLMHifiGan(nn.Module):
    """HiFi-GAN generator (transformers' `SpeechT5HifiGan`) sized for 80-bin, 10 ms-hop, 16 kHz log-mel; its
    `mean`/`scale` buffers hold the log-mel statistics it normalises with. Output: T·160 samples per T frames."""

    def __init__(self, generator: SpeechT5HifiGan):
        super().__init__()
        self.generator = generator
        self.sampling_rate = generator.config.sampling_rate

    @staticmethod
    def build_config(num_mel_bins: int = 80, upsample_initial_channel: int = 256, **kwargs) -> SpeechT5HifiGanConfig:
        return SpeechT5HifiGanConfig(
            model_in_dim=num_mel_bins,
            sampling_rate=16_000,
            upsample_initial_channel=upsample_initial_channel,
            upsample_rates=list(HIFIGAN_UPSAMPLE_RATES),
            upsample_kernel_sizes=list(HIFIGAN_KERNEL_SIZES),
            normalize_before=True,
            **kwargs,
        )

    def forward(self, log_mel: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """(B, T, M) or (T, M) log-mel → (B, T·160) or (T·160,) waveform (`seed` is unused: no sampling)."""
        return self.generator(log_mel.to(self.generator.dtype)).float()


def load_vocoder(model_folder: str | Path | None, feature_extractor: MelLLMFeatureExtractor) -> nn.Module:
    """The HiFi-GAN in `model_folder/vocoder/` when there is one, else Griffin-Lim."""
    if model_folder is not None:
        folder = Path(model_folder) / VOCODER_SUBFOLDER
        if (folder / "config.json").is_file():
            return MelLLMHifiGan(SpeechT5HifiGan.from_pretrained(folder)).eval()
    return MelLLMGriffinLim(feature_extractor)


__all__ = ["VOCODER_SUBFOLDER", "MelLLMGriffinLim", "MelLLMHifiGan", "load_vocoder"]
