"""MelLLMMelHead: LLM hidden state → next mel patch (MELLE-style next-token VAE), stop logit, post-net, and their losses.

Shapes: B batch, P patches (LLM steps), F patch values (r frames × M bins), M mel bins, T frames, D LLM hidden,
Z latent width, L token sequence. Everything here lives in the model's CMVN space (`MelLLMGlobalNorm`);
modeling_mel_llm.py computes the TTS loss with `tts_loss`, generation_mel_llm.py maps predictions back to log-mel.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .configuration_mel_llm import MelLLMConfig


@dataclass(frozen=True)
class MelLossWeights:
    """How the TTS loss is weighed: a training choice, so it lives on the model object, not in `config.json`.

    `total` scales the whole TTS loss next to the text loss; `kl` the KL term (MELLE: 0.1 × the ½-weighted KL);
    `stop` the stop BCE, whose `stop_pos_weight` counters the one "stop" step per utterance (or word).
    """

    total: float = 1.0
    kl: float = 0.1
    stop: float = 1.0
    stop_pos_weight: float = 20.0

    def __post_init__(self) -> None:
        for name in ("total", "kl", "stop"):
            if getattr(self, name) < 0:
                raise ValueError(f"MelLossWeights.{name} must be >= 0, got {getattr(self, name)}.")
        if self.stop_pos_weight <= 0:
            raise ValueError(f"MelLossWeights.stop_pos_weight must be positive, got {self.stop_pos_weight}.")


@dataclass
class MelHeadStep:
    """One head evaluation: the Gaussian latent, the refined patch y′ and the stop logit."""

    mean: torch.Tensor  # (..., Z)
    logvar: torch.Tensor  # (..., Z)
    patch: torch.Tensor  # (..., F) y′ = z + MLP(z), decoded to patch space
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
        self.frames_per_patch = config.frames_per_patch
        patch_size = config.patch_size
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
        return MelHeadStep(mean, logvar, patch, stop_logit)

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
        weights: MelLossWeights,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """
        MELLE's objective, averaged per value instead of summed (so weights do not scale with length):
        L1 + L2 on y′ and on y″ = post-net(y′), `weights.kl` × KL, `weights.stop` × BCE(stop, pos_weight).

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
        stop = F.binary_cross_entropy_with_logits(
            step.stop_logit,
            stop_targets.clamp(min=0).to(step.stop_logit.dtype),
            pos_weight=torch.tensor(weights.stop_pos_weight, device=step.stop_logit.device),
            reduction="none",
        )
        terms["stop"] = (stop * valid_patch).sum() / valid_patch.sum().clamp(min=1)
        total = terms["l1"] + terms["l2"] + weights.kl * terms["kl"] + weights.stop * terms["stop"]
        return total, terms


def tts_target_mask(
    tts_head: bool,
    input_ids: torch.Tensor | None,
    mel_targets: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """The (B, T) bool mask of real target frames, after checking that the model (`config.tts_head`) and inputs can
    learn to speak."""
    if not tts_head:
        raise ValueError("mel_targets need a TTS head; build the model with MelLLMConfig(tts_head=True).")
    if input_ids is None:
        raise ValueError("mel_targets need input_ids to locate the audio placeholders, not inputs_embeds.")
    if mask is None:
        return torch.ones(mel_targets.shape[:2], dtype=torch.bool, device=mel_targets.device)
    return mask.bool()


def tts_batch_labels(labels: torch.Tensor | None) -> torch.Tensor | None:
    """A TTS-only batch has no text to learn: its labels (all -100) become None, since a mean over none is NaN."""
    return labels if labels is not None and (labels != -100).any() else None


def audio_batch_with_tts_rows(
    input_features: torch.Tensor | None,
    input_features_mask: torch.Tensor | None,
    mel_inputs: torch.Tensor,
    mel_target_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One (B, T, M) audio batch and its (B, T) mask: TTS rows (a real frame in `mel_target_mask`) take their
    fed-back frames `mel_inputs`, ASR rows their input clip."""
    if input_features is None:
        return mel_inputs, mel_target_mask
    if input_features.shape[0] != mel_inputs.shape[0]:
        raise ValueError(
            f"With mel_targets, input_features must hold one clip per row: got {input_features.shape[0]} clips "
            f"for {mel_inputs.shape[0]} rows."
        )
    if input_features_mask is None:
        input_features_mask = torch.ones(input_features.shape[:2], dtype=torch.bool, device=input_features.device)
    tts_rows = mel_target_mask.any(-1)
    if (input_features_mask.bool().any(-1) & tts_rows).any():
        raise ValueError("A row has both input audio and mel_targets; give each row one or the other.")
    frames = max(input_features.shape[1], mel_inputs.shape[1])

    def pad(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 0, frames - x.shape[1]))

    def pad_mask(m: torch.Tensor) -> torch.Tensor:
        return F.pad(m.bool(), (0, frames - m.shape[1]))

    features = torch.where(tts_rows[:, None, None], pad(mel_inputs), pad(input_features).to(mel_inputs.dtype))
    mask = torch.where(tts_rows[:, None], pad_mask(mel_target_mask), pad_mask(input_features_mask))
    return features, mask


def stop_targets_from_placeholders(placeholders: torch.Tensor, patch_mask: torch.Tensor) -> torch.Tensor:
    """
    Stop-head targets (B, P): 1 on the last patch of each run of audio placeholders (the clip's end, or each word's
    when words and speech interleave), 0 on the other patches, -1 on padding. `placeholders` (B, L) marks the
    rows' audio placeholders in order, one per real patch of `patch_mask` (B, P).
    """
    run_ends = placeholders & ~F.pad(placeholders[:, 1:], (0, 1))
    targets = torch.where(patch_mask, 0, -1)
    targets[patch_mask] = run_ends[placeholders].long()
    return targets


def predictor_states(
    hidden: torch.Tensor, placeholders: torch.Tensor, mel_target_mask: torch.Tensor, frames_per_patch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    The hidden state (B, L, D) just before each target placeholder (`placeholders`, (B, L)), as (B, P, D) patches,
    with their (B, P) mask and the (B, P·r) frame mask (the last patch may be partial).
    """
    predictors = F.pad(placeholders[:, 1:], (0, 1))  # (B, L) the position before each placeholder
    frame_mask = F.pad(mel_target_mask, (0, -mel_target_mask.shape[1] % frames_per_patch))  # (B, P·r)
    patch_mask = frame_mask.reshape(frame_mask.shape[0], -1, frames_per_patch).any(-1)  # (B, P)
    if int(predictors.sum()) != int(patch_mask.sum()):
        raise ValueError(
            f"The TTS rows hold {int(placeholders.sum())} audio placeholders but mel_targets give "
            f"{int(patch_mask.sum())} patches; build TTS inputs with MelLLMProcessor.tts_inputs."
        )
    hidden_patches = hidden.new_zeros(*patch_mask.shape, hidden.shape[-1])  # (B, P, D)
    hidden_patches[patch_mask] = hidden[predictors]
    return hidden_patches, patch_mask, frame_mask


def frames_to_patches(
    frames: torch.Tensor, mask: torch.Tensor, num_patches: int, frames_per_patch: int
) -> torch.Tensor:
    """(B, T, M) frames, zero where `mask` (B, T) is False, cut into (B, `num_patches`, r·M) patches (the last one
    zero-padded): the targets a TTS loss compares each predicted patch with."""
    frames = frames.masked_fill(~mask[..., None], 0)
    frames = F.pad(frames, (0, 0, 0, num_patches * frames_per_patch - frames.shape[1]))
    return frames.reshape(frames.shape[0], num_patches, -1)


def tts_loss(
    head: MelLLMMelHead,
    hidden: torch.Tensor,
    placeholders: torch.Tensor,
    cmvn_targets: torch.Tensor,
    mel_target_mask: torch.Tensor,
    weights: MelLossWeights,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Teacher-forced mel loss: the hidden state just before each target placeholder predicts that patch.
    `cmvn_targets` (B, T, M) are the target frames already in CMVN space."""
    hidden_patches, patch_mask, frame_mask = predictor_states(
        hidden, placeholders, mel_target_mask, head.frames_per_patch
    )
    target_patches = frames_to_patches(cmvn_targets, mel_target_mask, patch_mask.shape[1], head.frames_per_patch)
    stop_targets = stop_targets_from_placeholders(placeholders, patch_mask)
    return head.loss(head.step(hidden_patches), target_patches, frame_mask, stop_targets, weights)


__all__ = [
    "MelHeadStep",
    "MelLLMMelHead",
    "MelLLMPostNet",
    "MelLossWeights",
    "audio_batch_with_tts_rows",
    "frames_to_patches",
    "predictor_states",
    "stop_targets_from_placeholders",
    "tts_batch_labels",
    "tts_loss",
    "tts_target_mask",
]
