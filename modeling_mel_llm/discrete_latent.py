"""MELD's discrete latent variables on mel patches (issue 22): q(z|x), code embeddings in, prior and decoder out.

Shapes: B batch, P patches, G codes per patch (groups), K codes per group, r frames per patch, M mel bins,
F = r·M patch values, D LLM hidden. Group g covers r/G consecutive frames of its patch (`frames_per_group`).
Everything lives in the model's CMVN space, as the continuous mel head does.

The objective follows "autoregressive co-training" (MELD's first author): a posterior q(z|x) from a small non-causal
conv over the mel (`MelLLMLatentEncoder`), an autoregressive prior p(z_t | h_t) read off the LLM's hidden state
before patch t, and a Gaussian decoder p(x_t | z_t, h_t) with one shared σ; per patch and group
    loss = E_q[-log p_prior(z)] - H(q) + E_q[-log p(x | z)]        (a KL(q ‖ prior) plus reconstruction)
with E_q either summed exactly over the K codes (`marginal`; the decoder factorises over groups, so the sum is
K terms per group) or one straight-through Gumbel-softmax sample (`gumbel`). The LLM reads codes, never mel: each
patch enters as the sum of its G code embeddings, with straight-through hard codes so a text loss trains q too.
"""

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .mel_head import frames_to_patches, predictor_states, stop_targets_from_placeholders


LATENT_ESTIMATORS = ("marginal", "gumbel")


@dataclass(frozen=True)
class LatentLossWeights:
    """How the discrete-latent TTS loss is weighed: a training choice (training arguments), not in `config.json`."""

    prior: float = 1.0
    entropy: float = 1.0
    reconstruction: float = 1.0
    stop: float = 1.0
    stop_pos_weight: float = 20.0
    usage: float = 1.0  # without it the codes collapse onto a few (docs/RESULTS.md, section 14)

    def __post_init__(self) -> None:
        for name in ("prior", "entropy", "reconstruction", "stop", "usage"):
            if getattr(self, name) < 0:
                raise ValueError(f"LatentLossWeights.{name} must be >= 0, got {getattr(self, name)}.")
        if self.stop_pos_weight <= 0:
            raise ValueError(f"LatentLossWeights.stop_pos_weight must be positive, got {self.stop_pos_weight}.")


@dataclass
class LatentTraining:
    """The training choices of the discrete path (training arguments set them; not saved with the model): the loss
    weights, how E_q is estimated, and the Gumbel temperature (annealed by the trainer)."""

    weights: LatentLossWeights = field(default_factory=LatentLossWeights)
    estimator: str = "marginal"
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.estimator not in LATENT_ESTIMATORS:
            raise ValueError(f"latent_estimator={self.estimator!r}; choose one of {LATENT_ESTIMATORS}.")
        if self.temperature <= 0:
            raise ValueError(f"latent_temperature must be positive, got {self.temperature}.")


@dataclass
class LatentStep:
    """One prediction per patch: the codes (…, G, K) one-hot, their decoded patch (…, F) and the stop logit (…)."""

    codes: torch.Tensor
    patch: torch.Tensor
    stop_logit: torch.Tensor


def straight_through(logits: torch.Tensor) -> torch.Tensor:
    """One-hot argmax codes (…, K) in the forward pass, the softmax's gradient in the backward pass."""
    soft = logits.softmax(-1)
    hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach()


class MelLLMLatentEncoder(nn.Module):
    """q(z|x): two non-causal convs over the (B, T, M) frames, then each group's frames → K logits."""

    def __init__(self, num_mel_bins: int, frames_per_patch: int, groups: int, codes: int, channels: int):
        super().__init__()
        if frames_per_patch % groups:
            raise ValueError(f"latent_groups={groups} must divide frames_per_patch={frames_per_patch}.")
        self.frames_per_patch, self.groups, self.codes = frames_per_patch, groups, codes
        self.convs = nn.ModuleList(
            [nn.Conv1d(num_mel_bins, channels, 5, padding=2), nn.Conv1d(channels, channels, 5, padding=2)]
        )
        self.to_logits = nn.Linear(channels * frames_per_patch // groups, codes)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, M) CMVN frames and their (B, T) mask → (B, P, G, K) logits and the (B, P) patch mask."""
        keep = mask[:, None, :].to(frames.dtype)
        hidden = frames.transpose(1, 2) * keep
        for conv in self.convs:
            hidden = F.gelu(conv(hidden)) * keep  # zeroed past each clip's end: the same codes alone or padded
        pad = -hidden.shape[-1] % self.frames_per_patch
        hidden = F.pad(hidden, (0, pad)).transpose(1, 2)  # (B, P·r, C)
        patch_mask = F.pad(mask.bool(), (0, pad)).reshape(mask.shape[0], -1, self.frames_per_patch).any(-1)
        grouped = hidden.reshape(
            hidden.shape[0], -1, self.groups, hidden.shape[-1] * self.frames_per_patch // self.groups
        )
        return self.to_logits(grouped), patch_mask


class MelLLMDiscreteLatent(nn.Module):
    """The encoder, code embeddings (the LLM's audio input), prior head, Gaussian decoder and stop head of MELD."""

    def __init__(
        self,
        num_mel_bins: int,
        frames_per_patch: int,
        hidden_size: int,
        groups: int,
        codes: int,
        encoder_channels: int,
    ):
        super().__init__()
        self.groups, self.codes = groups, codes
        self.group_size = frames_per_patch // groups * num_mel_bins  # values each group decodes
        self.encoder = MelLLMLatentEncoder(num_mel_bins, frames_per_patch, groups, codes, encoder_channels)
        self.code_embeddings = nn.Parameter(torch.randn(groups, codes, hidden_size) * 0.02)  # (G, K, D)
        self.prior_head = nn.Linear(hidden_size, groups * codes)
        self.codebook = nn.Parameter(torch.randn(groups, codes, self.group_size) * 0.1)  # decoder means (G, K, F/G)
        self.context = nn.Linear(hidden_size, groups * self.group_size)  # what h_t adds to every code's mean
        self.log_sigma = nn.Parameter(torch.zeros(()))  # one shared σ
        self.stop_proj = nn.Linear(hidden_size, 1)

    @classmethod
    def from_config(cls, config) -> "MelLLMDiscreteLatent":
        """The module a `MelLLMConfig(speech_latent="discrete")` describes."""
        return cls(
            config.num_mel_bins,
            config.frames_per_patch,
            config.hidden_size,
            config.latent_groups,
            config.latent_codes,
            config.latent_encoder_channels,
        )

    def audio_embeddings(
        self, frames: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the LLM reads for (B, T, M) CMVN frames: (B, P, D) embeddings of the straight-through argmax codes,
        the (B, P) patch mask and the (B, P, F) stacked patches (the audio features' hidden state)."""
        logits, patch_mask = self.encode(frames, mask)
        patches = F.pad(frames, (0, 0, 0, -frames.shape[1] % self.encoder.frames_per_patch))
        return self.embed(straight_through(logits)), patch_mask, patches.reshape(*patch_mask.shape, -1)

    @torch.no_grad()
    def code_counts(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(G, K) how often each group's argmax code occurs over the real patches of (B, T, M) CMVN frames; sum them
        over batches to measure a whole set."""
        logits, patch_mask = self.encode(frames, mask)
        return F.one_hot(logits[patch_mask].argmax(-1), self.codes).sum(0).float()

    @staticmethod
    def code_entropy_bits(counts: torch.Tensor) -> torch.Tensor:
        """(G,) entropy in bits of each group's code histogram (`code_counts`)."""
        usage = counts / counts.sum(-1, keepdim=True).clamp(min=1)
        return -(usage * usage.clamp(min=1e-12).log2()).sum(-1)

    def code_perplexity(self, frames: torch.Tensor, mask: torch.Tensor) -> float:
        """How many codes each group really uses on these frames: 2 ** the entropy of its argmax-code histogram
        over the real patches, averaged over groups (1 = collapse onto one code, K = all used equally)."""
        return float((2 ** self.code_entropy_bits(self.code_counts(frames, mask))).mean())

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """(…, G, K) one-hot (or straight-through) codes → (…, D): the sum of each group's code embedding."""
        return torch.einsum("...gk,gkd->...d", codes.to(self.code_embeddings.dtype), self.code_embeddings)

    def encode(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, M) frames → (B, P, G, K) posterior logits and the (B, P) patch mask."""
        return self.encoder(frames, mask)

    def prior_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(…, D) hidden states → (…, G, K) logits of the next patch's codes."""
        return self.prior_head(hidden).unflatten(-1, (self.groups, self.codes))

    def decode(self, codes: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The decoder's mean patch (…, F) for (…, G, K) one-hot codes and the (…, D) state before the patch."""
        means = torch.einsum("...gk,gkf->...gf", codes.to(self.codebook.dtype), self.codebook)
        return (means + self.context(hidden).unflatten(-1, (self.groups, self.group_size))).flatten(-2)

    def _code_nll(self, target: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """-log p(x_g | z_g = k, h) for every code: (B, P, G, K), from ‖r - c_k‖² = ‖r‖² - 2 r·c_k + ‖c_k‖²."""
        residual = target.unflatten(-1, (self.groups, self.group_size)) - self.context(hidden).unflatten(
            -1, (self.groups, self.group_size)
        )  # (B, P, G, F/G)
        squared = (
            residual.pow(2).sum(-1, keepdim=True)
            - 2 * torch.einsum("bpgf,gkf->bpgk", residual, self.codebook)
            + self.codebook.pow(2).sum(-1)
        )
        return 0.5 * squared * torch.exp(-2 * self.log_sigma) + self.group_size * self.log_sigma

    def loss(
        self,
        posterior_logits: torch.Tensor,
        hidden: torch.Tensor,
        target_patches: torch.Tensor,
        stop_targets: torch.Tensor,
        weights: LatentLossWeights,
        estimator: str = "marginal",
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """
        The per-value-averaged objective over the predicted patches (`stop_targets` >= 0). Terms, each returned:
        `prior` E_q[-log p(z)], `entropy` H(q), `reconstruction` E_q[-log p(x|z)] per patch value, `stop` BCE.

        Args:
            posterior_logits (`(B, P, G, K)`): q(z|x) of each target patch.
            hidden (`(B, P, D)`): the LLM state just before each target patch.
            target_patches (`(B, P, F)`): CMVN-space targets (zeros past a clip's end).
            stop_targets (`(B, P)`): 1 on each run's last patch, 0 before, -1 where no patch is predicted.
        """
        if estimator not in LATENT_ESTIMATORS:
            raise ValueError(f"latent_estimator={estimator!r}; choose one of {LATENT_ESTIMATORS}.")
        valid = (stop_targets >= 0).to(hidden.dtype)  # (B, P)
        count = valid.sum().clamp(min=1.0)
        log_q = posterior_logits.log_softmax(-1)
        q = log_q.exp()
        log_prior = self.prior_logits(hidden).log_softmax(-1)
        code_nll = self._code_nll(target_patches, hidden)  # (B, P, G, K)
        if estimator == "marginal":
            reconstruction = (q * code_nll).sum(-1)  # exact: the decoder factorises over groups
        else:
            sample = F.gumbel_softmax(posterior_logits, tau=temperature, hard=True)
            reconstruction = (sample * code_nll).sum(-1)

        def per_patch(values: torch.Tensor) -> torch.Tensor:  # (B, P, G) → mean over predicted patches
            return (values.sum(-1) * valid).sum() / count

        stop = F.binary_cross_entropy_with_logits(
            self.stop_proj(hidden).squeeze(-1),
            stop_targets.clamp(min=0).to(hidden.dtype),
            pos_weight=torch.tensor(weights.stop_pos_weight, device=hidden.device),
            reduction="none",
        )
        terms = {
            "prior": per_patch(-(q * log_prior).sum(-1)),
            "entropy": per_patch(-(q * log_q).sum(-1)),
            "reconstruction": per_patch(reconstruction),
            "stop": (stop * valid).sum() / count,
            "usage": self._usage_entropy(q, valid),
        }
        total = (
            weights.prior * terms["prior"]
            - weights.entropy * terms["entropy"]
            + weights.reconstruction * terms["reconstruction"]
            + weights.stop * terms["stop"]
            - weights.usage * terms["usage"]
        )
        return total, terms

    def autoencoder_loss(
        self, frames: torch.Tensor, mask: torch.Tensor, weights: LatentLossWeights
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Stage 1 of `two_stage` training: the same objective with no LLM (a zero state), so the prior is a unigram
        (the prior head's bias) and the decoder reads the codes alone; no stop term. (B, T, M) CMVN frames."""
        logits, patch_mask = self.encode(frames, mask)
        targets = frames_to_patches(frames, mask, patch_mask.shape[1], self.encoder.frames_per_patch)
        hidden = frames.new_zeros(*patch_mask.shape, self.prior_head.in_features)
        stops = torch.where(patch_mask, 0, -1)
        alone = LatentLossWeights(weights.prior, weights.entropy, weights.reconstruction, 0.0, usage=weights.usage)
        return self.loss(logits, hidden, targets, stops, alone)

    def freeze_autoencoder(self) -> None:
        """Stage 2 of `two_stage` training: the encoder and decoder keep their stage-1 weights; the LLM, the code
        embeddings, the prior and the stop head learn on their codes."""
        for module in (self.encoder, self.context):
            module.requires_grad_(False)
        self.codebook.requires_grad_(False)
        self.log_sigma.requires_grad_(False)

    @staticmethod
    def _usage_entropy(q: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Entropy of the batch's average posterior, summed over groups: high when the patches spread over many
        codes (wav2vec 2.0's diversity term; its weight `usage` keeps codes from collapsing onto a few)."""
        average = (q * valid[..., None, None]).sum((0, 1)) / valid.sum().clamp(min=1.0)  # (G, K)
        return -(average * average.clamp(min=1e-12).log()).sum()

    @torch.no_grad()
    def sample(
        self,
        hidden: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        logits_processor=None,
        history: list[torch.Tensor] | None = None,
    ) -> LatentStep:
        """
        One generation step from (…, D) states: codes drawn from the prior (argmax at temperature 0), their
        decoded patch and the stop logit. `logits_processor` (transformers' `LogitsProcessorList`) filters one row's
        (G, K) scores, with `history` (that row's earlier (G,) codes) as each group's input ids.
        """
        logits = self.prior_logits(hidden)
        logits = logits / temperature if temperature > 0 else logits
        if logits_processor is not None:  # after the temperature: the penalty commutes with it, top-k/p follow it
            if logits.shape[:-2].numel() != 1:
                raise ValueError("Logits processors filter one row's codes at a time.")
            earlier = torch.stack(history, -1) if history else logits.new_zeros(self.groups, 0, dtype=torch.long)
            scores = logits.reshape(self.groups, self.codes)
            logits = logits_processor(earlier, scores).reshape(logits.shape)
        if temperature == 0:
            index = logits.argmax(-1)
        else:
            probs = logits.softmax(-1)
            index = torch.multinomial(probs.flatten(0, -2), 1, generator=generator).view(probs.shape[:-1])
        codes = F.one_hot(index, self.codes).to(hidden.dtype)
        return LatentStep(codes, self.decode(codes, hidden), self.stop_proj(hidden).squeeze(-1))


def latent_tts_loss(
    module: MelLLMDiscreteLatent,
    hidden: torch.Tensor,
    placeholders: torch.Tensor,
    cmvn_targets: torch.Tensor,
    mel_target_mask: torch.Tensor,
    training: LatentTraining,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`mel_head.tts_loss` for discrete latents: the state before each target placeholder predicts that patch's
    codes (prior), and with them its frames (decoder); q(z|x) comes from the recorded frames themselves."""
    hidden_patches, patch_mask, _ = predictor_states(
        hidden, placeholders, mel_target_mask, module.encoder.frames_per_patch
    )
    logits, _ = module.encode(cmvn_targets, mel_target_mask)  # the encoder zeroes frames past each clip's end
    frames_per_patch = module.encoder.frames_per_patch
    target_patches = frames_to_patches(cmvn_targets, mel_target_mask, patch_mask.shape[1], frames_per_patch)
    stop_targets = stop_targets_from_placeholders(placeholders, patch_mask)
    return module.loss(
        logits[:, : patch_mask.shape[1]],
        hidden_patches,
        target_patches,
        stop_targets,
        training.weights,
        training.estimator,
        training.temperature,
    )


__all__ = [
    "LATENT_ESTIMATORS",
    "LatentLossWeights",
    "LatentStep",
    "LatentTraining",
    "MelLLMDiscreteLatent",
    "MelLLMLatentEncoder",
    "latent_tts_loss",
    "straight_through",
]
