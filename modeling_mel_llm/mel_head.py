"""MelLLMMelHead: LLM hidden state → next mel patch (MELLE-style next-token VAE), stop logit, post-net, and their losses.

Shapes: B batch, P patches (LLM steps), F patch values (r frames × M bins), M mel bins, T frames, D LLM hidden,
Z latent width. Everything here lives in the model's CMVN space (`MelLLMGlobalNorm`); modeling_mel_llm.py maps
predictions back to log-mel.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .configuration_mel_llm import MelLLMConfig


@dataclass
class MelHeadStep:
    """One head evaluation: the Gaussian latent, the refined patch y′ and the stop logit."""

    mean: torch.Tensor  # (..., Z)
    logvar: torch.Tensor  # (..., Z)
    patch: torch.Tensor  # (..., F) y′ = z + MLP(z), decoded to patch space
    mean_patch: torch.Tensor  # (..., F) the latent mean in patch space (for the flux term)
    stop_logit: torch.Tensor  # (...,)


class MelLLMPostNet(nn.Module):
    """Residual 1-D conv stack over the whole predicted spectrogram: y″ = y′ + PostNet(y′).

    Each conv is followed by a per-frame LayerNorm (not MELLE's BatchNorm, whose statistics would depend on the
    batch and its padding) and tanh; frames past each clip's end are zeroed after every layer, so a clip gives the
    same output alone or padded in a batch.
    """

    def __init__(self, num_mel_bins: int, channels: int, num_layers: int, kernel_size: int):
        super().__init__()
        widths = [num_mel_bins] + [channels] * (num_layers - 1) + [num_mel_bins]
        self.convs = nn.ModuleList(
            nn.Conv1d(widths[i], widths[i + 1], kernel_size, padding=kernel_size // 2) for i in range(num_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(widths[i + 1]) for i in range(num_layers - 1))

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[:, None, :].to(frames.dtype)  # (B, 1, T)
        hidden = frames.transpose(1, 2) * keep  # (B, M, T)
        for i, conv in enumerate(self.convs):
            hidden = conv(hidden)
            if i < len(self.norms):
                hidden = torch.tanh(self.norms[i](hidden.transpose(1, 2)).transpose(1, 2))
            hidden = hidden * keep
        return frames + hidden.transpose(1, 2)


class MelLLMMelHead(nn.Module):
    """
    MELLE's latent sampling module on the LLM's last hidden state: Linear(D → 2Z) gives μ and log σ²,
    z = μ + τ·σ·ε, y′ = z + MLP(z) (3 layers, residual); a Linear(D → 1) stop logit; a conv post-net applied to the
    whole predicted spectrogram. With `tts_latent_dim=None` the latent is the patch (Z = F, MELLE), otherwise a
    Linear(Z → F) decodes it first.
    """

    def __init__(self, config: MelLLMConfig):
        super().__init__()
        self.num_mel_bins = config.num_mel_bins
        self.frames_per_step = config.tts_frames_per_step
        patch_size = self.frames_per_step * config.num_mel_bins
        self.melle_latent = config.tts_latent_dim is None
        latent = patch_size if self.melle_latent else config.tts_latent_dim
        self.latent_proj = nn.Linear(config.hidden_size, 2 * latent)
        self.latent_to_patch = nn.Identity() if self.melle_latent else nn.Linear(latent, patch_size)
        hidden = config.tts_mlp_size
        self.refine = nn.Sequential(
            nn.Linear(patch_size, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, patch_size),
        )
        self.stop_proj = nn.Linear(config.hidden_size, 1)
        self.postnet = (
            MelLLMPostNet(
                config.num_mel_bins, config.tts_postnet_channels, config.tts_postnet_layers, config.tts_postnet_kernel
            )
            if config.tts_postnet_layers > 0
            else None
        )

    def step(self, hidden: torch.Tensor, noise: torch.Tensor | None = None, temperature: float = 1.0) -> MelHeadStep:
        """Predict the next patch from hidden states (..., D). `noise` (..., Z) is ε; None draws it from torch's RNG."""
        mean, logvar = self.latent_proj(hidden).chunk(2, dim=-1)
        logvar = logvar.clamp(-10.0, 10.0)  # keeps exp() finite early in training
        if noise is None:
            noise = torch.randn_like(mean)
        latent = mean + temperature * torch.exp(0.5 * logvar) * noise
        coarse = self.latent_to_patch(latent)
        patch = coarse + self.refine(coarse)
        stop_logit = self.stop_proj(hidden).squeeze(-1)
        return MelHeadStep(mean, logvar, patch, self.latent_to_patch(mean), stop_logit)

    def refine_spectrogram(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Post-net over (B, T, M) frames with their (B, T) mask; identity without a post-net."""
        return frames if self.postnet is None else self.postnet(frames, mask)

    def to_frames(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, P, F) → (B, P·r, M)."""
        return patches.reshape(patches.shape[0], -1, self.num_mel_bins)

    def loss(
        self,
        step: MelHeadStep,
        target_patches: torch.Tensor,
        frame_mask: torch.Tensor,
        stop_targets: torch.Tensor,
        config: MelLLMConfig,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """
        MELLE's objective, averaged per value instead of summed (so weights do not scale with length):
        L1 + L2 on y′ and on y″ = post-net(y′); `tts_kl_weight` × KL; `tts_flux_weight` × (−‖μ_t − y_{t−1}‖₁);
        `tts_stop_weight` × BCE(stop, pos_weight).

        Args:
            step: head outputs for N predicted patches, batched as (B, P, ...).
            target_patches (`(B, P, F)`): CMVN-space targets.
            frame_mask (`(B, P·r)`): True on real target frames (the last patch may be partial).
            stop_targets (`(B, P)`): 1 on each utterance's last patch, 0 before, -1 where no patch is predicted.
        """
        valid_patch = stop_targets >= 0  # (B, P)
        target = self.to_frames(target_patches)  # (B, T, M)
        weight = frame_mask[..., None].to(target.dtype).expand_as(target)  # (B, T, M)
        count = weight.sum().clamp(min=1.0)

        def masked_mean(values: torch.Tensor) -> torch.Tensor:
            return (values * weight).sum() / count

        coarse = self.to_frames(step.patch)
        refined = self.refine_spectrogram(coarse, frame_mask)
        terms = {
            "l1": masked_mean((coarse - target).abs()) + masked_mean((refined - target).abs()),
            "l2": masked_mean((coarse - target) ** 2) + masked_mean((refined - target) ** 2),
        }
        if self.melle_latent:  # KL(N(μ, σ²) ‖ N(y, I)), MELLE's form
            kl = -0.5 * (1 + step.logvar - (self.to_frames(step.mean) - target).reshape_as(step.mean) ** 2)
            kl = kl + 0.5 * step.logvar.exp()
            terms["kl"] = masked_mean(self.to_frames(kl))
        else:  # KL(N(μ, σ²) ‖ N(0, I)) per latent value of each predicted patch
            kl = 0.5 * (step.mean**2 + step.logvar.exp() - 1 - step.logvar).mean(-1)  # (B, P)
            terms["kl"] = (kl * valid_patch).sum() / valid_patch.sum().clamp(min=1)
        previous = F.pad(target, (0, 0, 1, 0))[:, :-1]  # y_{t-1}; zeros before the first frame
        terms["flux"] = -masked_mean((self.to_frames(step.mean_patch) - previous).abs())
        stop = F.binary_cross_entropy_with_logits(
            step.stop_logit,
            stop_targets.clamp(min=0).to(step.stop_logit.dtype),
            pos_weight=torch.tensor(config.tts_stop_pos_weight, device=step.stop_logit.device),
            reduction="none",
        )
        terms["stop"] = (stop * valid_patch).sum() / valid_patch.sum().clamp(min=1)
        total = (
            terms["l1"]
            + terms["l2"]
            + config.tts_kl_weight * terms["kl"]
            + config.tts_flux_weight * terms["flux"]
            + config.tts_stop_weight * terms["stop"]
        )
        return total, terms


__all__ = ["MelHeadStep", "MelLLMMelHead", "MelLLMPostNet"]
