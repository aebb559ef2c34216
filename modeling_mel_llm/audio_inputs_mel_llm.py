"""Where audio (or, for the unified front end, text spelled as units) becomes LLM input embeddings.

`MelLLMAudioInputsMixin` projects log-mel frames (frontend_mel_llm.py, or MELD's codes, or TESU's merged units) and
scatters them over the prompt's audio placeholders; modeling_mel_llm.py's `forward` then runs the LM. With
`frontend="unified"` a clip's speech merges into fewer vectors than its placeholders: the vectors fill the first
placeholders and the rest leave the sequence through the attention mask (`compacted_attention`), which `generate`
carries on (`_update_model_kwargs_for_generation`), so the LLM sees exactly the units, as in text-only training.

Shapes: B batch, T mel frames, M mel bins, P audio patches, F patch features, D LLM hidden, L tokens, U units, C unit
posteriors (blank included).
"""

from dataclasses import dataclass

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import torch_compilable_check

from .generation_mel_llm import positions_from_mask


UNIT_INPUTS = ("unit_posteriors", "unit_posteriors_mask")


@dataclass
class MelLLMAudioOutput(BaseModelOutputWithPooling):
    """`get_audio_features`' output: transformers' audio-feature output plus which patches hold audio."""

    patch_mask: torch.BoolTensor | None = None


@dataclass
class ProjectedAudio:
    """Audio as LLM embeddings (B, P, D), its (B, P) patch mask (one placeholder each), the (B, P, F) patches, and
    the (B, P) mask of embeddings that reach the LLM (the patch mask, except after TESU's merging: left-aligned)."""

    embeds: torch.Tensor
    patch_mask: torch.Tensor
    patches: torch.Tensor
    kept: torch.Tensor


def compacted_attention(
    attention_mask: torch.Tensor | None, dropped: torch.Tensor
) -> tuple[torch.Tensor, torch.LongTensor]:
    """The attention mask without the `dropped` (B, L) positions, and position ids that count only what is left."""
    keep = torch.ones_like(dropped) if attention_mask is None else attention_mask.bool()
    mask = (keep & ~dropped).to(attention_mask.dtype if attention_mask is not None else torch.long)
    return mask, positions_from_mask(mask)


class MelLLMAudioInputsMixin:
    """Audio features, placeholders and their merge into the prompt's embeddings, for `MelLLMForSpeechLM`."""

    def fit_feature_normalization(self, input_features: torch.Tensor, input_features_mask: torch.Tensor) -> None:
        """Set the per-bin log-mel mean/std from a large training batch (Phi-4-MM ships them): without them the
        linear projection sees inputs of scale ~10 and learns far more slowly."""
        self.audio_frontend.norm.fit(input_features, input_features_mask)

    def get_audio_features(
        self,
        input_features: torch.Tensor,
        input_features_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> "MelLLMAudioOutput | tuple":
        """
        Project log-mel frames to LLM embeddings.

        Args:
            input_features (`torch.Tensor` of shape `(B, T, M)`): log-mel frames from `MelLLMFeatureExtractor`.
            input_features_mask (`torch.Tensor` of shape `(B, T)`, *optional*): True on real frames.
            output_hidden_states: also return the front end's output (the patches before the projection).
            return_dict: `False` gives the output as a tuple. Both default to the config's, as in transformers.
            **kwargs: `output_attentions` gives `attentions=()` for the `stack` and `conv` front ends, which have
                no attention layers (the conformer's are not returned: None).

        Returns:
            `MelLLMAudioOutput`: `last_hidden_state` `(B, P, D)` embeddings, `pooler_output` `(ΣP, D)` the real
            patches in order (what replaces the placeholders, as in Voxtral), `patch_mask` `(B, P)`, and with
            `output_hidden_states` the one state an encoder-free front end has: the `(B, P, F)` patches.
        """
        config = self.config
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = kwargs.get("output_attentions")
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        audio = self._project_audio(input_features, input_features_mask)
        output = MelLLMAudioOutput(
            last_hidden_state=audio.embeds,
            pooler_output=audio.embeds[audio.kept],
            hidden_states=(audio.patches,) if output_hidden_states else None,
            attentions=() if output_attentions and self.audio_frontend.encoder is None else None,
            patch_mask=audio.kept,
        )
        return output if (config.return_dict if return_dict is None else return_dict) else output.to_tuple()

    def _project_audio(self, input_features, input_features_mask) -> ProjectedAudio:
        """The clips' embeddings and masks, all of static shape (what compiles)."""
        if input_features.ndim != 3 or input_features.shape[-1] != self.config.num_mel_bins:
            raise ValueError(
                f"input_features must have shape (batch, frames, {self.config.num_mel_bins}), got "
                f"{tuple(input_features.shape)}."
            )
        if input_features_mask is None:
            input_features_mask = torch.ones(input_features.shape[:2], dtype=torch.bool, device=input_features.device)
        weight = next(self.multi_modal_projector.parameters(), None)  # none once quantized: read the norm's dtype
        features = input_features.to(
            weight.dtype if weight is not None else self.audio_frontend.norm.global_mean.dtype
        )
        if self.speech_latent is not None and self.config.asr_input == "latent":
            embeds, patch_mask, patches = self.speech_latent.audio_embeddings(
                self.audio_frontend.norm(features), input_features_mask.bool()
            )
            return ProjectedAudio(embeds, patch_mask, patches, patch_mask)
        patches, patch_mask = self.audio_frontend(features, input_features_mask.bool())
        if self.unified_frontend is None:
            return ProjectedAudio(self.multi_modal_projector(patches), patch_mask, patches, patch_mask)
        vectors, kept = self.unified_frontend.speech_vectors(patches, patch_mask)
        return ProjectedAudio(self.multi_modal_projector(vectors), patch_mask, patches, kept)

    def frontend_parameter_counts(self) -> dict[str, int]:
        """Audio-path parameters by part (`conv`, `encoder`, `projector`, `total`): what going encoder-free saves."""
        projector = sum(p.numel() for p in self.multi_modal_projector.parameters())
        counts = {**self.audio_frontend.parameter_counts(), "projector": projector}
        if self.unified_frontend is not None:
            counts["encoder"] = sum(p.numel() for p in self.unified_frontend.parameters())
        return {**counts, "total": sum(counts.values())}

    def get_placeholder_mask(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, L) True where an audio patch goes: the audio token in `input_ids`, or, given only `inputs_embeds`, the
        positions whose embedding is the audio token's (as Qwen2-Audio and Voxtral find them)."""
        if self.config.audio_token_id is None:
            raise ValueError("config.audio_token_id is not set, so audio cannot be placed in the prompt.")
        if input_ids is not None:
            return input_ids == self.config.audio_token_id
        audio_token = torch.tensor(self.config.audio_token_id, device=inputs_embeds.device)
        return (inputs_embeds == self.get_input_embeddings()(audio_token).to(inputs_embeds.dtype)).all(-1)

    def merge_audio_embeddings(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor,
        input_features: torch.Tensor,
        input_features_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """The prompt's embeddings with the clips' patches over its placeholders (`merge_audio`'s first part)."""
        return self.merge_audio(input_ids, inputs_embeds, input_features, input_features_mask)[0]

    def merge_audio(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor,
        input_features: torch.Tensor,
        input_features_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Scatter the real audio patches, in order, over the placeholder positions, after checking the counts. Shapes
        stay static (no boolean indexing, no host-side count), so a fullgraph-compiled `forward` includes the prefill.
        Also returns the (B, L) placeholders that get no vector (TESU's merged speech), or None.
        """
        audio = self._project_audio(input_features, input_features_mask)
        placeholder_mask = self.get_placeholder_mask(input_ids, inputs_embeds)
        patch_mask = audio.patch_mask
        torch_compilable_check(
            placeholder_mask.sum() == patch_mask.sum(),
            lambda: (
                f"The prompt has {int(placeholder_mask.sum())} audio placeholder tokens (id "
                f"{self.config.audio_token_id}) but the audio gives {int(patch_mask.sum())} patches "
                f"({patch_mask.sum(-1).tolist()} per clip). Build inputs with MelLLMProcessor, which inserts "
                "MelLLMFeatureExtractor.num_audio_tokens() placeholders per clip."
            ),
        )
        real_first = torch.argsort((~patch_mask).flatten().to(torch.uint8), stable=True)  # real patches, in order
        audio_embeds = audio.embeds.flatten(0, 1)[real_first].to(inputs_embeds.device, inputs_embeds.dtype)  # (B·P, D)
        placeholders = placeholder_mask.to(inputs_embeds.device)
        merged = inputs_embeds.masked_scatter(placeholders.unsqueeze(-1), audio_embeds)
        if self.unified_frontend is None:
            return merged, None
        unfilled = ~audio.kept.flatten()[real_first].to(placeholders.device)
        return merged, torch.zeros_like(placeholders).masked_scatter(placeholders, unfilled)

    def merge_text_units(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor,
        unit_posteriors: torch.Tensor,
        unit_posteriors_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """TESU's text path: each item's (pseudo-)posteriors over the units (B, U, C) → shared space → projector,
        one vector per placeholder."""
        if self.unified_frontend is None:
            raise ValueError("unit_posteriors (text given as speech) need a model with frontend='unified'.")
        num_units = len(self.config.unit_vocabulary)
        if unit_posteriors.ndim != 3 or unit_posteriors.shape[-1] != num_units:
            raise ValueError(
                f"unit_posteriors must have shape (items, units, {num_units}), got {tuple(unit_posteriors.shape)}."
            )
        if unit_posteriors_mask is None:
            unit_posteriors_mask = torch.ones(
                unit_posteriors.shape[:2], dtype=torch.bool, device=unit_posteriors.device
            )
        unit_mask = unit_posteriors_mask.bool()
        weight = next(self.multi_modal_projector.parameters())
        vectors = self.unified_frontend.text_vectors(unit_posteriors.to(weight.dtype), unit_mask)
        embeds = self.multi_modal_projector(vectors)
        placeholder_mask = self.get_placeholder_mask(input_ids, inputs_embeds)
        if int(placeholder_mask.sum()) != int(unit_mask.sum()):
            raise ValueError(
                f"The prompt has {int(placeholder_mask.sum())} audio placeholder tokens but the text-as-speech items "
                f"have {unit_mask.sum(-1).tolist()} units; build inputs with MelLLMProcessor(text_as_speech=...)."
            )
        units = embeds[unit_mask].to(inputs_embeds.device, inputs_embeds.dtype)
        return inputs_embeds.masked_scatter(placeholder_mask.unsqueeze(-1).to(inputs_embeds.device), units)

    def _embed_inputs(
        self, input_ids, inputs_embeds, input_features, input_features_mask, unit_posteriors=None, unit_mask=None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prompt's embeddings (B, L, D) with the audio patches (or text units) scattered over its placeholders
        (found in `input_ids`, or in `inputs_embeds` by the audio token's embedding), and the (B, L) placeholders
        left without a vector (None: every one got one)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        if unit_posteriors is not None:
            if input_features is not None:
                raise ValueError("Pass input_features (speech) or unit_posteriors (text as speech), not both.")
            return self.merge_text_units(input_ids, inputs_embeds, unit_posteriors, unit_mask), None
        if input_features is None:
            return inputs_embeds, None
        return self.merge_audio(input_ids, inputs_embeds, input_features, input_features_mask)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        next_sequence_length: int | None = None,
        past_key_values=None,
        attention_mask: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        is_first_iteration: bool | None = False,
        **kwargs,
    ) -> dict:
        """transformers' own, which passes audio only to the prefill; text-as-speech inputs likewise."""
        inputs = super().prepare_inputs_for_generation(
            input_ids, next_sequence_length, past_key_values, attention_mask, inputs_embeds, is_first_iteration,
            **kwargs,
        )  # fmt: skip
        if not is_first_iteration and past_key_values is not None and kwargs.get("use_cache", True):
            for name in UNIT_INPUTS:
                inputs.pop(name, None)
        return inputs

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs: dict, *args, **kwargs) -> dict:
        """After a prefill that left placeholders out (TESU's merged speech), later steps keep them out and count
        positions from what is left."""
        compacted = getattr(outputs, "attention_mask", None)
        if compacted is not None:
            model_kwargs["attention_mask"] = compacted
            if model_kwargs.get("position_ids") is not None:
                model_kwargs["position_ids"] = positions_from_mask(compacted)
        return super()._update_model_kwargs_for_generation(outputs, model_kwargs, *args, **kwargs)
