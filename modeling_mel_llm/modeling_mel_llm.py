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
from transformers.modeling_outputs import CausalLMOutputWithPast

from .audio_inputs_mel_llm import MelLLMAudioInputsMixin, MelLLMAudioOutput, compacted_attention
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
from .unified_encoder import MelLLMUnifiedFrontend


DEFAULT_MAX_NEW_TOKENS = 512  # the Open ASR leaderboard's Phi-4-MM setting


@dataclass
class MelLLMOutputWithPast(CausalLMOutputWithPast):
    """`CausalLMOutputWithPast` plus, for TTS batches, the mel head's loss (already inside `loss`) and its terms;
    after a unified front end's prefill, the attention mask without the placeholders its merged speech left empty."""

    tts_loss: torch.FloatTensor | None = None
    tts_loss_terms: dict[str, torch.Tensor] | None = None
    attention_mask: torch.Tensor | None = None


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


class MelLLMForSpeechLM(
    MelLLMAudioInputsMixin, MelLLMLongFormMixin, MelLLMSpeechGenerationMixin, MelLLMPreTrainedModel, GenerationMixin
):
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
        unified = config.frontend == "unified"  # TESU: a CTC encoder's merged units, which text reaches too
        self.unified_frontend = MelLLMUnifiedFrontend(config) if unified else None
        audio_size = self.unified_frontend.output_size if unified else self.audio_frontend.output_size
        self.multi_modal_projector = build_projector(config, audio_size)
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
        unit_posteriors: torch.Tensor | None = None,
        unit_posteriors_mask: torch.Tensor | None = None,
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
            unit_posteriors (`(N, U, C)`), unit_posteriors_mask (`(N, U)`): `frontend="unified"`, text given as
                speech (`MelLLMProcessor(text_as_speech=...)`): one placeholder per unit.
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
        inputs_embeds, unfilled = self._embed_inputs(
            input_ids, inputs_embeds, input_features, input_features_mask, unit_posteriors, unit_posteriors_mask
        )
        if unfilled is not None:  # merged speech fills fewer placeholders than it has: the rest leave the sequence
            attention_mask, position_ids = compacted_attention(attention_mask, unfilled)
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
        output = MelLLMOutputWithPast(**outputs, attention_mask=attention_mask if unfilled is not None else None)
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
