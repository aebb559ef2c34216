"""MelLLMForSpeechLM: log-mel patches → one linear projection → any causal LM, with no speech encoder by default.

The audio path (CMVN, front end, projector) is in frontend_mel_llm.py; `forward` embeds the prompt, scatters the
projected patches over its audio placeholders and runs the LM, plus the TTS loss of mel_head.py when `mel_targets`
are given. Speaking (`generate_speech`) is generation_mel_llm.py; text generation is transformers' `GenerationMixin`.

Shapes: B batch, T mel frames, M mel bins, P audio patches (LLM audio tokens), F patch features, D LLM hidden,
L token sequence. The feature extractor (processing/feature_extraction_mel_llm.py) owns the T → P formula; this file
checks that the prompt carries exactly one placeholder per patch.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling, CausalLMOutputWithPast
from transformers.utils import torch_compilable_check

from .configuration_mel_llm import MelLLMConfig
from .conformer_mel_llm import Phi4MultimodalAudioGluPointWiseConv
from .discrete_latent import LatentTraining, MelLLMDiscreteLatent, latent_tts_loss
from .frontend_mel_llm import MelLLMAudioFrontend, MelLLMGlobalNorm, build_projector
from .generation_mel_llm import (
    MelLLMSpeechGenerationMixin,
    MelLLMSpeechOutput,
    check_packed_rows,
    positions_from_mask,
    sequence_extent,
)
from .label_position_loss import has_plain_lm_head, label_position_loss
from .long_form_mel_llm import MelLLMLongFormMixin
from .mel_head import (
    MelLLMMelHead,
    MelLossWeights,
    audio_batch_with_tts_rows,
    tts_batch_labels,
    tts_loss,
    tts_target_mask,
)
from .text_model_mel_llm import check_context, mel_llm_around


DEFAULT_MAX_NEW_TOKENS = 512  # the Open ASR leaderboard's Phi-4-MM setting


@dataclass
class MelLLMAudioOutput(BaseModelOutputWithPooling):
    """`get_audio_features`' output: transformers' audio-feature output plus which patches hold audio."""

    patch_mask: torch.BoolTensor | None = None


@dataclass
class MelLLMOutputWithPast(CausalLMOutputWithPast):
    """`CausalLMOutputWithPast` plus, for TTS batches, the mel head's loss (already inside `loss`) and its terms."""

    tts_loss: torch.FloatTensor | None = None
    tts_loss_terms: dict[str, torch.Tensor] | None = None


class MelLLMPreTrainedModel(PreTrainedModel):
    config: MelLLMConfig
    config_class = MelLLMConfig
    base_model_prefix = "language_model"  # `model.base_model` is the causal LM; the audio path sits beside it
    main_input_name = "input_ids"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = []
    _skip_keys_device_placement = ["past_key_values"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # The decode step has no host sync: with a static cache, `sequence_extent` reads its fixed size, not its length.
    _can_compile_fullgraph = True

    def _init_weights(self, module: nn.Module) -> None:
        """
        The convolution stack gets He init and its `out` linear LeCun init: with the LLM's default N(0, 0.02) the
        three stride-2 stages shrink unit-variance log-mel to ~1e-8 and the model trains for thousands of steps
        before it hears anything.
        """
        super()._init_weights(module)
        if isinstance(module, MelLLMGlobalNorm):
            init.zeros_(module.global_mean)
            init.ones_(module.global_invstd)
        elif isinstance(module, nn.Conv2d):  # only the conv subsampling has 2-D convolutions
            init.kaiming_normal_(module.weight, nonlinearity="relu")
            init.zeros_(module.bias)
        elif isinstance(module, Phi4MultimodalAudioGluPointWiseConv):  # its GLU biases are bare parameters
            init.zeros_(module.b1)
            init.zeros_(module.b2)
        elif isinstance(module, MelLLMDiscreteLatent):  # its code tables and σ are bare parameters
            init.normal_(module.code_embeddings, std=0.02)
            init.normal_(module.codebook, std=0.1)
            init.zeros_(module.log_sigma)
        elif module is getattr(self.audio_frontend.subsampling, "out", None):
            init.normal_(module.weight, std=module.in_features**-0.5)
            init.zeros_(module.bias)

    # The backbone's embeddings and decoder are the model's: resizing, tying and PEFT reach them through these.
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()


class MelLLMForSpeechLM(MelLLMLongFormMixin, MelLLMSpeechGenerationMixin, MelLLMPreTrainedModel, GenerationMixin):
    r"""
    Encoder-free speech LLM (Mel-LLM). Audio placeholders in `input_ids` (`config.audio_token_id`) are replaced, in
    order, by the projected log-mel patches; everything else is the backbone causal LM, so its generation, caching,
    attention implementations, PEFT adapters and losses work unchanged.

    Example:

    ```python
    >>> import numpy as np
    >>> from transformers import AutoProcessor, AutoModelForSpeechSeq2Seq
    >>> processor = AutoProcessor.from_pretrained("path/to/mel-llm", trust_remote_code=True)
    >>> model = AutoModelForSpeechSeq2Seq.from_pretrained("path/to/mel-llm", trust_remote_code=True)
    >>> inputs = processor(audio=np.zeros(16000, dtype=np.float32), sampling_rate=16000)
    >>> tokens = model.generate(**inputs, max_new_tokens=20)
    >>> processor.batch_decode(tokens[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    ```
    """

    def __init__(self, config: MelLLMConfig):
        super().__init__(config)
        self.audio_frontend = MelLLMAudioFrontend(config)
        self.multi_modal_projector = build_projector(config, self.audio_frontend.output_size)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        discrete = config.speech_latent == "discrete"  # MELD: codes in, and with a TTS head codes out
        self.speech_latent = MelLLMDiscreteLatent.from_config(config) if discrete else None
        self.mel_head = MelLLMMelHead(config) if config.tts_head and not discrete else None
        # How the TTS loss is weighed: training choices (training/arguments.py sets them), not saved with the model.
        self.tts_loss_weights, self.latent_training = MelLossWeights(), LatentTraining()
        # Also a training choice: in training with text labels, apply the LM head only where a token is a target.
        self.label_logits_only = False
        self.post_init()
        if self.generation_config.max_new_tokens is None:
            self.generation_config.max_new_tokens = DEFAULT_MAX_NEW_TOKENS

    @classmethod
    def from_text_model(cls, text_model, processor, dtype: torch.dtype | None = None, **config_kwargs):
        """
        Build a Mel-LLM around a causal LM: a loaded `PreTrainedModel`, or a Hub id / local path (loaded with
        `AutoModelForCausalLM.from_pretrained`). `processor` is the `MelLLMProcessor` made with
        `MelLLMProcessor.from_text_tokenizer(AutoTokenizer.from_pretrained(same id))`: its audio token id and
        `frames_per_patch` go into the config, and the embeddings grow to cover the tokens it added. The audio front end
        and projector start from random weights.
        """
        return mel_llm_around(cls, text_model, processor, dtype, **config_kwargs)

    # ------------------------------------------------------------------ audio
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
        embeds, patch_mask, patches = self._project_audio(input_features, input_features_mask)
        output = MelLLMAudioOutput(
            last_hidden_state=embeds,
            pooler_output=embeds[patch_mask],
            hidden_states=(patches,) if output_hidden_states else None,
            attentions=() if output_attentions and self.audio_frontend.encoder is None else None,
            patch_mask=patch_mask,
        )
        return output if (config.return_dict if return_dict is None else return_dict) else output.to_tuple()

    def _project_audio(self, input_features, input_features_mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, P, D) embeddings, (B, P) patch mask and (B, P, F) patches, all of static shape (what compiles)."""
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
            return self.speech_latent.audio_embeddings(self.audio_frontend.norm(features), input_features_mask.bool())
        patches, patch_mask = self.audio_frontend(features, input_features_mask.bool())
        return self.multi_modal_projector(patches), patch_mask, patches

    def frontend_parameter_counts(self) -> dict[str, int]:
        """Audio-path parameters by part (`conv`, `encoder`, `projector`, `total`): what going encoder-free saves."""
        projector = sum(p.numel() for p in self.multi_modal_projector.parameters())
        counts = {**self.audio_frontend.parameter_counts(), "projector": projector}
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
        """
        Scatter the real audio patches, in order, over the placeholder positions, after checking the counts. Shapes
        stay static (no boolean indexing, no host-side count), so a fullgraph-compiled `forward` includes the prefill.
        """
        embeds, patch_mask, _ = self._project_audio(input_features, input_features_mask)
        placeholder_mask = self.get_placeholder_mask(input_ids, inputs_embeds)
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
        audio_embeds = embeds.flatten(0, 1)[real_first].to(inputs_embeds.device, inputs_embeds.dtype)  # (B·P, D)
        return inputs_embeds.masked_scatter(placeholder_mask.unsqueeze(-1).to(inputs_embeds.device), audio_embeds)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mel_targets: torch.Tensor | None = None,
        mel_target_mask: torch.Tensor | None = None,
        mel_inputs: torch.Tensor | None = None,
        **kwargs,
    ) -> MelLLMOutputWithPast:
        r"""
        Args:
            input_ids (`(B, L)`) with audio placeholders; input_features (`(B, T, M)`, omit after the prefill) and
                input_features_mask (`(B, T)`); attention_mask (`(B, L)`); labels (`(B, L)`, -100 = ignored).
            position_ids: derived from `attention_mask` when omitted; without it they mark packed rows.
            mel_targets (`(B, T, M)`), mel_target_mask (`(B, T)`): TTS training, one clip per TTS row; the position
                before each placeholder learns the next patch. mel_inputs: the frames those placeholders read
                (default `mel_targets`; the model's own predictions under scheduled sampling).
            **kwargs: passed to the backbone (e.g. `num_items_in_batch`).

        Returns:
            `MelLLMOutputWithPast`: `loss` (text + weighted TTS loss), `logits`, `past_key_values`, `tts_loss`.
        """
        if mel_targets is not None:
            if input_ids is None:
                raise ValueError("mel_targets need input_ids to locate the TTS rows' audio placeholders.")
            mel_target_mask = tts_target_mask(self.config.tts_head, input_ids, mel_targets, mel_target_mask)
            fed_back = mel_targets if mel_inputs is None else mel_inputs
            audio = audio_batch_with_tts_rows(input_features, input_features_mask, fed_back, mel_target_mask)
            (input_features, input_features_mask), labels = audio, tts_batch_labels(labels)
        inputs_embeds = self._embed_inputs(input_ids, inputs_embeds, input_features, input_features_mask)
        extent, nothing_cached = sequence_extent(past_key_values, inputs_embeds.shape[1])
        self.check_context(extent)
        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2 and nothing_cached:
            position_ids = positions_from_mask(attention_mask)
        if attention_mask is None and position_ids is not None and past_key_values is None:
            check_packed_rows(mel_targets)
            use_cache = False  # transformers derives the block-causal mask from position_ids only without a cache
        if mel_targets is not None:
            kwargs["output_hidden_states"] = True  # the mel head reads the last hidden state
        return_dict = kwargs.pop("return_dict", None)  # the backbone always returns its output class here
        if self._uses_label_logits_only(labels, mel_targets, logits_to_keep):
            backbone_inputs = {"attention_mask": attention_mask, "position_ids": position_ids, "use_cache": False}
            loss = label_position_loss(self.language_model, inputs_embeds, labels, **backbone_inputs, **kwargs)
            output = MelLLMOutputWithPast(loss=loss)
            return output if return_dict is not False else output.to_tuple()
        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
        output = MelLLMOutputWithPast(**outputs)
        if mel_targets is not None:
            self._add_tts_loss(output, outputs.hidden_states[-1], input_ids, mel_targets, mel_target_mask)
        return output if return_dict is not False else output.to_tuple()

    def _uses_label_logits_only(self, labels, mel_targets, logits_to_keep) -> bool:
        """Whether this call takes the `label_position_loss` path: training on text labels alone (TTS rows read the
        hidden states) with a plain LM head (no logit softcapping or scaling, which that path would skip)."""
        return (
            self.label_logits_only
            and self.training
            and labels is not None
            and mel_targets is None
            and isinstance(logits_to_keep, int)
            and logits_to_keep == 0
            and has_plain_lm_head(self.config.text_config)
        )

    def _embed_inputs(self, input_ids, inputs_embeds, input_features, input_features_mask) -> torch.Tensor:
        """The prompt's embeddings (B, L, D) with the audio patches scattered over its placeholders (found in
        `input_ids`, or in `inputs_embeds` by the audio token's embedding)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        if input_features is None:
            return inputs_embeds
        return self.merge_audio_embeddings(input_ids, inputs_embeds, input_features, input_features_mask)

    # ------------------------------------------------------------------ TTS training
    def tts_placeholders(self, input_ids: torch.Tensor, mel_target_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) True on the audio placeholders of TTS rows (rows whose `mel_target_mask` holds a real frame)."""
        return self.get_placeholder_mask(input_ids) & mel_target_mask.any(-1)[:, None]

    def _add_tts_loss(self, output, hidden, input_ids, mel_targets, mel_target_mask) -> None:
        """Add the weighted teacher-forced mel loss (mel_head.tts_loss) to `output.loss`, and record its terms."""
        targets = self.audio_frontend.norm(mel_targets.to(hidden.dtype))
        placeholders = self.tts_placeholders(input_ids, mel_target_mask)
        if self.speech_latent is not None:
            loss, terms = latent_tts_loss(
                self.speech_latent, hidden, placeholders, targets, mel_target_mask, self.latent_training
            )
        else:
            loss, terms = tts_loss(
                self.mel_head, hidden, placeholders, targets, mel_target_mask, self.tts_loss_weights
            )
        weighted = self.tts_loss_weights.total * loss
        output.loss = weighted if output.loss is None else output.loss + weighted
        output.tts_loss, output.tts_loss_terms = loss, terms

    def check_context(self, num_tokens: int) -> int | None:
        """Refuse a sequence past the backbone's context (`text_model_mel_llm.check_context`); positions left."""
        return check_context(self.config.text_config, num_tokens)


__all__ = [
    "MelLLMAudioOutput",
    "MelLLMForSpeechLM",
    "MelLLMOutputWithPast",
    "MelLLMPreTrainedModel",
    "MelLLMSpeechOutput",
]
