"""The audio path before the LLM: CMVN, frames → patches (stack | strided conv | conv + conformer), projector.

Next on the path: modeling_mel_llm.py places the projected patches at the prompt's audio placeholders.
Shapes: B batch, T mel frames, M mel bins, P audio patches (LLM audio tokens), F patch features, D LLM hidden.
"""

import torch
from torch import nn

from .configuration_mel_llm import MelLLMConfig
from .conformer_mel_llm import MelLLMConformerEncoder


class MelLLMGlobalNorm(nn.Module):
    """Global per-bin mean/variance normalisation (Phi-4-MM's `global_mean`/`global_invstd` buffers)."""

    def __init__(self, num_mel_bins: int):
        super().__init__()
        self.register_buffer("global_mean", torch.zeros(num_mel_bins))
        self.register_buffer("global_invstd", torch.ones(num_mel_bins))

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return (input_features - self.global_mean) * self.global_invstd

    def denormalize(self, features: torch.Tensor) -> torch.Tensor:
        """CMVN space → log-mel (what the TTS head predicts → what the feature extractor produces)."""
        return features / self.global_invstd + self.global_mean

    @torch.no_grad()
    def fit(self, input_features: torch.Tensor, input_features_mask: torch.Tensor) -> None:
        """Set the statistics from real frames (B, T, M) under a (B, T) mask, as Phi-4-MM's checkpoint carries."""
        frames = input_features[input_features_mask.bool()].double()  # (frames, M)
        if frames.shape[0] < 2:
            raise ValueError("Need at least two real frames to estimate the feature statistics.")
        self.global_mean.copy_(frames.mean(0))
        self.global_invstd.copy_(1.0 / frames.std(0).clamp(min=1e-3))


class MelLLMStackFrontend(nn.Module):
    """Concatenate `frames_per_patch` consecutive frames into one patch: (B, T, M) → (B, P, k·M)."""

    def __init__(self, config: MelLLMConfig):
        super().__init__()
        self.frames_per_patch = config.frames_per_patch
        self.output_size = config.patch_size

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, frames, mel = features.shape
        pad = -frames % self.frames_per_patch
        features = nn.functional.pad(features, (0, 0, 0, pad))  # padded frames are zero, as masked ones are
        mask = nn.functional.pad(mask, (0, pad))
        patches = features.reshape(batch, -1, self.frames_per_patch * mel)  # (B, P, k·M)
        patch_mask = mask.reshape(batch, -1, self.frames_per_patch).any(-1)  # (B, P)
        return patches, patch_mask


class MelLLMConvFrontend(nn.Module):
    """
    NeMo "dw_striding" subsampling as Phi-4-MM keeps it: Conv2d(1→C, k3, s2) + ReLU, then per extra factor of two
    a depthwise Conv2d(C, k3, s2) → pointwise Conv2d(C→C, k1) → ReLU; flatten channels × frequency; `out` linear.
    Module names (`conv.{0,2,3,...}`, `out`) match Phi-4-MM's `encoder.embed` so its weights map one to one.
    Unlike Phi-4-MM, activations past each clip's end are zeroed after every stage, so a clip gives the same
    output alone or padded in a batch.
    """

    def __init__(self, config: MelLLMConfig):
        super().__init__()
        channels = config.conv_channels
        num_stages = config.frames_per_patch.bit_length() - 1
        layers: list[nn.Module] = [nn.Conv2d(1, channels, kernel_size=3, stride=2, padding=1), nn.ReLU()]
        for _ in range(num_stages - 1):
            layers += [
                nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1, groups=channels),
                nn.Conv2d(channels, channels, kernel_size=1),
                nn.ReLU(),
            ]
        self.conv = nn.Sequential(*layers)
        freq = config.num_mel_bins
        for _ in range(num_stages):
            freq = (freq + 1) // 2
        self.out = nn.Linear(channels * freq, config.conv_output_size)
        self.output_size = config.conv_output_size

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = features.unsqueeze(1)  # (B, 1, T, M)
        lengths = mask.sum(-1)  # (B,)
        for layer in self.conv:
            hidden = layer(hidden)
            if isinstance(layer, nn.Conv2d) and layer.stride[0] == 2:
                lengths = torch.div(lengths + 1, 2, rounding_mode="floor")  # ceil(len / 2)
                valid = torch.arange(hidden.shape[2], device=hidden.device)[None, :] < lengths[:, None]
                hidden = hidden * valid[:, None, :, None].to(hidden.dtype)
        batch, _, patches, _ = hidden.shape
        hidden = self.out(hidden.transpose(1, 2).reshape(batch, patches, -1))  # (B, P, C·M/k) → (B, P, F)
        patch_mask = torch.arange(patches, device=hidden.device)[None, :] < lengths[:, None]
        return hidden, patch_mask


class MelLLMAudioFrontend(nn.Module):
    """
    Normalise log-mel frames, zero the padding, and turn frames into patches with the configured front end; with
    `frontend="encoder"` the conv patches then pass through conformer blocks (Phi-4-MM's audio path).
    """

    def __init__(self, config: MelLLMConfig):
        super().__init__()
        self.norm = MelLLMGlobalNorm(config.num_mel_bins)
        if config.frontend in ("stack", "unified"):  # the unified encoder reads stacked patches
            self.subsampling = MelLLMStackFrontend(config)
        else:
            self.subsampling = MelLLMConvFrontend(config)
        self.encoder = MelLLMConformerEncoder(config) if config.frontend == "encoder" else None
        self.output_size = self.subsampling.output_size
        # Patches whose frames one output patch sees: the conv stack (k3 s2 p1 per stage) reaches 7 frames back
        # into the previous patch and none ahead, so generated patches can be embedded one by one.
        self.context_patches = 2 if config.frontend == "conv" else 1

    def parameter_counts(self) -> dict[str, int]:
        """Parameters by part: `conv` (subsampling) and `encoder` (conformer blocks; 0 without)."""
        encoder = sum(p.numel() for p in self.encoder.parameters()) if self.encoder is not None else 0
        return {"conv": sum(p.numel() for p in self.subsampling.parameters()), "encoder": encoder}

    def forward(
        self, input_features: torch.Tensor, input_features_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.norm(input_features)
        features = features.masked_fill(~input_features_mask[..., None], 0.0)
        patches, patch_mask = self.subsampling(features, input_features_mask)  # (B, P, F), (B, P)
        if self.encoder is not None:
            patches = self.encoder(patches, patch_mask)
        return patches, patch_mask


class MelLLMMLPProjector(nn.Module):
    """Linear → GELU → Linear: the shape of Phi-4-MM's speech projector (`up_proj_for_speech`, `down_proj_for_speech`)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        self.linear_1 = nn.Linear(input_size, hidden_size, bias=bias)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(hidden_size, hidden_size, bias=bias)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(patches)))


def build_projector(config: MelLLMConfig, input_size: int) -> nn.Module:
    """The audio → LLM projection: one linear layer (the paper) or Phi-4-MM's two-layer MLP."""
    if config.projector_type == "mlp":
        return MelLLMMLPProjector(input_size, config.text_config.hidden_size, bias=config.projector_bias)
    return nn.Linear(input_size, config.text_config.hidden_size, bias=config.projector_bias)


__all__ = [
    "MelLLMAudioFrontend",
    "MelLLMConvFrontend",
    "MelLLMGlobalNorm",
    "MelLLMMLPProjector",
    "MelLLMStackFrontend",
    "build_projector",
]
