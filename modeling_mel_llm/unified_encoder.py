"""TESU-LLM's unified front end (issue 23): speech and text into one space, so the LLM side can learn from text alone.

Speech path: the stacked log-mel patches of `MelLLMAudioFrontend` → a small Transformer → CTC posteriors over units
(index 0 the blank) → blank-skip and merge, about one vector per unit. Text path: units → pseudo-posteriors (one-hot
from the processor; training smooths, drops and repeats them: training/text_as_speech.py). The shared space is
`posterior`: the non-blank posterior, renormalised, times a unit embedding table; or `hidden`: the speech encoder's
merged states, which a small text encoder learns to produce from the units (MSE + cosine on paired data). Either
then goes through the model's `multi_modal_projector`. audio_inputs_mel_llm.py places the vectors in the prompt.

Shapes: B batch, P patches, C units with the blank, W encoder width, U units of a text.
"""

import torch
from torch import nn
from torch.nn import functional as F

from .configuration_mel_llm import MelLLMConfig


POSITION_KERNEL = 15  # patches the depthwise positional convolution sees (1.2 s at 80 ms)


class MelLLMUnitSequenceEncoder(nn.Module):
    """Linear in, depthwise conv for position, pre-norm Transformer layers: the body of both encoders."""

    def __init__(self, input_size: int, config: MelLLMConfig, num_layers: int):
        super().__init__()
        width = config.unified_encoder_size
        self.input_proj = nn.Linear(input_size, width)
        self.position = nn.Conv1d(width, width, POSITION_KERNEL, padding=POSITION_KERNEL // 2, groups=width)
        layer = nn.TransformerEncoderLayer(
            width, config.unified_encoder_heads, 4 * width, dropout=0.1, activation="gelu", batch_first=True,
            norm_first=True,
        )  # fmt: skip
        self.layers = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(width), enable_nested_tensor=False)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, N, input_size) under a (B, N) mask → (B, N, W), padding zeroed (a clip's states do not depend on
        how much padding its batch adds)."""
        hidden = self.input_proj(inputs).masked_fill(~mask[..., None], 0.0)
        hidden = hidden + self.position(hidden.transpose(1, 2)).transpose(1, 2)
        hidden = self.layers(hidden.masked_fill(~mask[..., None], 0.0), src_key_padding_mask=~mask)
        return hidden.masked_fill(~mask[..., None], 0.0)


def unit_segments(posteriors: torch.Tensor, mask: torch.Tensor, blank_threshold: float) -> torch.Tensor:
    """
    CTC collapse of frame posteriors (B, P, C): a frame whose blank probability exceeds `blank_threshold` is dropped,
    the others take their best non-blank unit, and a run of frames with the same unit is one segment (a blank between
    two equal units keeps them apart, as in CTC decoding). Returns each frame's segment index (B, P), -1 if dropped.
    """
    labels = posteriors[..., 1:].argmax(-1) + 1
    labels = labels.masked_fill((posteriors[..., 0] > blank_threshold) | ~mask, 0)
    previous = F.pad(labels, (1, 0))[:, :-1]
    starts = (labels != 0) & (labels != previous)
    index = starts.long().cumsum(-1) - 1
    return index.masked_fill(labels == 0, -1)


def merge_segments(values: torch.Tensor, segment_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average `values` (B, P, X) over each segment: (B, P, X) with segment s at position s, and the (B, P) mask of
    positions that hold a segment."""
    batch, length, size = values.shape
    in_segment = (segment_index >= 0).to(values.dtype)[..., None]
    target = segment_index.clamp(min=0)[..., None]
    sums = torch.zeros_like(values).scatter_add(1, target.expand(-1, -1, size), values * in_segment)
    counts = torch.zeros(batch, length, 1, dtype=values.dtype, device=values.device).scatter_add(1, target, in_segment)
    return sums / counts.clamp(min=1), counts[..., 0] > 0


class MelLLMUnifiedFrontend(nn.Module):
    """The speech path's CTC encoder, the shared space, and (for `hidden`) the text encoder that learns to match it."""

    def __init__(self, config: MelLLMConfig):
        super().__init__()
        num_units = len(config.unit_vocabulary)
        self.blank_threshold = config.blank_threshold
        self.shared_space = config.shared_space
        self.speech_encoder = MelLLMUnitSequenceEncoder(config.patch_size, config, config.unified_encoder_layers)
        self.ctc_head = nn.Linear(config.unified_encoder_size, num_units)
        if config.shared_space == "posterior":
            self.unit_embeddings = nn.Linear(num_units - 1, config.unified_encoder_size, bias=False)
            self.text_encoder = None
        else:
            self.unit_embeddings = None
            self.text_encoder = MelLLMUnitSequenceEncoder(num_units, config, config.unified_text_encoder_layers)
        self.output_size = config.unified_encoder_size

    def speech_states(self, patches: torch.Tensor, patch_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P, W) encoder states and (B, P, C) CTC logits of CMVN-normalised stacked patches."""
        hidden = self.speech_encoder(patches, patch_mask)
        return hidden, self.ctc_head(hidden)

    def speech_vectors(self, patches: torch.Tensor, patch_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The shared-space vectors of speech, one per merged segment, left-aligned (B, P, W), and their (B, P) mask."""
        return self.merged_vectors(*self.speech_states(patches, patch_mask), patch_mask)

    def merged_vectors(
        self, hidden: torch.Tensor, logits: torch.Tensor, patch_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`speech_vectors` from the encoder's states and CTC logits: blank-skip, merge, and the shared space."""
        posteriors = logits.softmax(-1)
        segments = unit_segments(posteriors, patch_mask, self.blank_threshold)
        if self.unit_embeddings is not None:
            merged, kept = merge_segments(posteriors, segments)
            vectors = self._posterior_space(merged)
        else:
            vectors, kept = merge_segments(hidden, segments)
        return vectors.masked_fill(~kept[..., None], 0.0), kept

    def encoder_loss(
        self,
        patches: torch.Tensor,
        patch_mask: torch.Tensor,
        unit_labels: torch.Tensor,
        unit_posteriors: torch.Tensor,
        unit_mask: torch.Tensor,
    ) -> torch.Tensor:
        """
        The encoder stage's loss from one pass of the speech encoder: mean CTC loss per target unit (`unit_labels`
        (B, U) unit ids, -100 past each transcript's end), plus for the `hidden` space the text encoder's match to
        the merged states (`hidden_match_loss`; the transcripts as one-hot `unit_posteriors`).
        """
        hidden, logits = self.speech_states(patches, patch_mask)
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (P, B, C)
        target_lengths = (unit_labels >= 0).sum(-1)
        loss = F.ctc_loss(
            log_probs, unit_labels.clamp(min=0), patch_mask.sum(-1), target_lengths, blank=0, zero_infinity=True
        )
        if self.text_encoder is None:
            return loss
        targets, kept = self.merged_vectors(hidden.detach(), logits.detach(), patch_mask)
        match = self.hidden_match_loss(targets, kept, unit_posteriors, unit_mask)
        return loss if match is None else loss + match

    def text_vectors(self, unit_posteriors: torch.Tensor, unit_mask: torch.Tensor) -> torch.Tensor:
        """The shared-space vectors (B, U, W) of text given as (pseudo-)posteriors over the units (B, U, C)."""
        if self.unit_embeddings is not None:
            vectors = self._posterior_space(unit_posteriors)
        else:
            vectors = self.text_encoder(unit_posteriors, unit_mask)
        return vectors.masked_fill(~unit_mask[..., None], 0.0)

    def _posterior_space(self, posteriors: torch.Tensor) -> torch.Tensor:
        units = posteriors[..., 1:]  # without the blank, renormalised: a kept frame is about its unit
        return self.unit_embeddings(units / units.sum(-1, keepdim=True).clamp(min=1e-6))

    def hidden_match_loss(
        self, targets: torch.Tensor, kept: torch.Tensor, unit_posteriors: torch.Tensor, unit_mask: torch.Tensor
    ) -> torch.Tensor | None:
        """
        `hidden` space: MSE + (1 - cosine) between the text encoder's vectors and the speech encoder's merged states
        (`targets` (B, P, W) under `kept`, a fixed target), over the clips whose segment count equals their unit
        count (there segment i is unit i). None if no clip qualifies.
        """
        aligned = kept.sum(-1) == unit_mask.sum(-1)
        if not aligned.any():
            return None
        width = min(targets.shape[1], unit_posteriors.shape[1])
        predicted = self.text_vectors(unit_posteriors[aligned], unit_mask[aligned])[:, :width]
        mask = unit_mask[aligned][:, :width]
        predicted, target = predicted[mask], targets[aligned][:, :width][mask]
        cosine = F.cosine_similarity(predicted, target, dim=-1)
        return F.mse_loss(predicted, target) + (1 - cosine).mean()


__all__ = ["MelLLMUnifiedFrontend", "merge_segments", "unit_segments"]
