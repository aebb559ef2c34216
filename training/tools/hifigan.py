"""HiFi-GAN training parts: multi-period and multi-scale discriminators and the GAN losses (the generator is
transformers' `SpeechT5HifiGan`, see processing/vocoder_mel_llm.py). Next: training/tools/train_vocoder.py.

Shapes: B batch, N samples. `width` scales every discriminator's channels (HiFi-GAN V1 = 32; CPU runs use 8).
Weight norm everywhere (the paper uses spectral norm on the first scale discriminator).
"""

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


LEAKY_SLOPE = 0.1


def _conv_stack(
    convs: nn.ModuleList, post: nn.Module, hidden: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv stack then the output conv: (flattened logits, every layer's activations for feature matching)."""
    features = []
    for conv in convs:
        hidden = nn.functional.leaky_relu(conv(hidden), LEAKY_SLOPE)
        features.append(hidden)
    hidden = post(hidden)
    features.append(hidden)
    return hidden.flatten(1), features


class PeriodDiscriminator(nn.Module):
    """Looks at every `period`-th sample: (B, N) → (B, 1, N/p, p) → 2-D convs with kernels along time only."""

    def __init__(self, period: int, width: int):
        super().__init__()
        self.period = period
        channels = [1, width, 4 * width, 16 * width, 32 * width]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(channels[i], channels[i + 1], (5, 1), (3, 1), padding=(2, 0))) for i in range(4)
        )
        self.convs.append(weight_norm(nn.Conv2d(channels[-1], channels[-1], (5, 1), 1, padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, length = waveform.shape
        pad = -length % self.period
        hidden = nn.functional.pad(waveform, (0, pad), mode="reflect" if pad < length else "constant")
        return _conv_stack(self.convs, self.post, hidden.view(batch, 1, -1, self.period))


class ScaleDiscriminator(nn.Module):
    """Grouped strided 1-D convs over the waveform (at one resolution)."""

    def __init__(self, width: int):
        super().__init__()
        c = [1, width // 2, 2 * width, 8 * width, 16 * width, 16 * width, 16 * width]
        specs = [(15, 1, 1), (41, 4, 4), (41, 4, 16), (41, 4, 16), (41, 4, 16), (5, 1, 1)]  # kernel, stride, groups
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv1d(c[i], c[i + 1], k, s, groups=min(g, c[i]), padding=k // 2))
            for i, (k, s, g) in enumerate(specs)
        )
        self.post = weight_norm(nn.Conv1d(c[-1], 1, 3, 1, padding=1))

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.post, waveform[:, None])


class HifiGanDiscriminators(nn.Module):
    """MPD (periods 2, 3, 5, 7, 11) + MSD (raw, ×2 and ×4 average-pooled)."""

    def __init__(self, width: int = 32, periods: tuple[int, ...] = (2, 3, 5, 7, 11), num_scales: int = 3):
        super().__init__()
        self.period_discriminators = nn.ModuleList(PeriodDiscriminator(p, width) for p in periods)
        self.scale_discriminators = nn.ModuleList(ScaleDiscriminator(width) for _ in range(num_scales))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, waveform: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        outputs = [d(waveform) for d in self.period_discriminators]
        scaled = waveform
        for i, discriminator in enumerate(self.scale_discriminators):
            if i > 0:
                scaled = self.pool(scaled[:, None])[:, 0]
            outputs.append(discriminator(scaled))
        return outputs


def discriminator_loss(real: list, fake: list) -> torch.Tensor:
    """LSGAN: real scores → 1, generated → 0."""
    return sum(torch.mean((1 - r) ** 2) + torch.mean(f**2) for (r, _), (f, _) in zip(real, fake, strict=True))


def generator_adversarial_loss(fake: list) -> torch.Tensor:
    return sum(torch.mean((1 - f) ** 2) for f, _ in fake)


def feature_matching_loss(real: list, fake: list) -> torch.Tensor:
    """L1 between discriminator activations on real and generated audio (real ones detached)."""
    total = 0.0
    for (_, real_features), (_, fake_features) in zip(real, fake, strict=True):
        for r, f in zip(real_features, fake_features, strict=True):
            total = total + torch.mean(torch.abs(r.detach() - f))
    return total


__all__ = [
    "HifiGanDiscriminators",
    "PeriodDiscriminator",
    "ScaleDiscriminator",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
]
