"""MelLLMForSpeechLM: log-mel patches → one linear projection → any causal LM, with no speech encoder by default.

`frontend="encoder"` adds Phi-4-MM-style conformer blocks (conformer_mel_llm.py) as the encoder baseline.

Shapes: B batch, T mel frames, M mel bins, P audio patches (LLM audio tokens), F patch features, D LLM hidden,
L token sequence. The feature extractor (processing/feature_extraction_mel_llm.py) owns the T → P formula; this file
checks that the prompt carries exactly one placeholder per patch. With `config.tts_head` the model also speaks:
mel_head.py predicts the next patch, which goes back in through the same audio path.
"""

import copy
import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModelForCausalLM, DynamicCache, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils import ModelOutput

from .configuration_mel_llm import MelLLMConfig
from .conformer_mel_llm import MelLLMConformerEncoder, Phi4MultimodalAudioGluPointWiseConv
from .mel_head import MelHeadStep, MelLLMMelHead


DEFAULT_MAX_NEW_TOKENS = 512  # the Open ASR leaderboard's Phi-4-MM setting


@dataclass
class MelLLMOutputWithPast(CausalLMOutputWithPast):
    """`CausalLMOutputWithPast` plus the auxiliary losses already inside `loss`: for TTS batches the mel head's loss
    and its terms, and with `config.ctc_loss_weight` the CTC loss on the audio positions."""

    tts_loss: torch.FloatTensor | None = None
    tts_loss_terms: dict[str, torch.Tensor] | None = None
    ctc_loss: torch.FloatTensor | None = None


@dataclass
class MelLLMSpeechOutput(ModelOutput):
    """`generate_speech` result: log-mel frames (B, T, M) in the feature extractor's scale, zero past each
    clip's `mel_lengths` (B,), and the stop probability of every step (B, steps)."""

    mel_features: torch.FloatTensor | None = None
    mel_lengths: torch.LongTensor | None = None
    stop_probabilities: torch.FloatTensor | None = None


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding: each row counts from 0 at its first real token (padding gets 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def stop_targets_from_placeholders(placeholders: torch.Tensor, patch_mask: torch.Tensor) -> torch.Tensor:
    """
    Stop-head targets (B, P): 1 on the last patch of each run of audio placeholders (the clip's end, or each word's
    when words and speech interleave), 0 on the other patches, -1 on padding. `placeholders` (B, L) marks the
    rows' audio placeholders in order, one per real patch of `patch_mask` (B, P).
    """
    run_ends = placeholders & ~nn.functional.pad(placeholders[:, 1:], (0, 1))
    targets = torch.where(patch_mask, 0, -1)
    targets[patch_mask] = run_ends[placeholders].long()
    return targets


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


def normalize_per_utterance(features: torch.Tensor, mask: torch.Tensor, scale: bool) -> torch.Tensor:
    """Subtract each clip's per-bin mean over its real frames (`mask`, (B, T)), and divide by its std if `scale`."""
    weights = mask[..., None].to(features.dtype)
    count = weights.sum(1, keepdim=True).clamp(min=1.0)
    mean = (features * weights).sum(1, keepdim=True) / count
    centred = features - mean
    if not scale:
        return centred
    std = ((centred.square() * weights).sum(1, keepdim=True) / count).sqrt()
    return centred / std.clamp(min=1e-3)


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
        self.utterance_norm = config.utterance_norm
        if config.frontend == "stack":
            self.subsampling = MelLLMStackFrontend(config)
        else:
            self.subsampling = MelLLMConvFrontend(config)
        self.encoder = MelLLMConformerEncoder(config) if config.frontend == "encoder" else None
        self.output_size = self.subsampling.output_size
        # Patches whose frames one output patch sees: the conv stack (k3 s2 p1 per stage) reaches 7 frames back
        # into the previous patch and none ahead, so generated patches can be embedded one by one.
        self.context_patches = 2 if config.frontend == "conv" else 1

    def forward(self, input_features: torch.Tensor, input_features_mask: torch.Tensor):
        features = self.norm(input_features)
        if self.utterance_norm != "none":
            features = normalize_per_utterance(features, input_features_mask, scale=self.utterance_norm == "meanvar")
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


class MelLLMPreTrainedModel(PreTrainedModel):
    config: MelLLMConfig
    config_class = MelLLMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = []
    _skip_keys_device_placement = ["past_key_values"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
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
        elif module is getattr(self.audio_frontend.subsampling, "out", None):
            init.normal_(module.weight, std=module.in_features**-0.5)
            init.zeros_(module.bias)


class MelLLMForSpeechLM(MelLLMPreTrainedModel, GenerationMixin):
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
        self.mel_head = MelLLMMelHead(config) if config.tts_head else None
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
        if not isinstance(text_model, PreTrainedModel):
            text_model = AutoModelForCausalLM.from_pretrained(text_model, dtype=dtype)
        vocab_size = max(len(processor.tokenizer), processor.audio_token_id + 1)
        if vocab_size > text_model.get_input_embeddings().num_embeddings:
            text_model.resize_token_embeddings(vocab_size, mean_resizing=False)
        config_kwargs.setdefault("frames_per_patch", processor.feature_extractor.frames_per_patch)
        config_kwargs.setdefault("num_mel_bins", processor.feature_extractor.feature_size)
        config = MelLLMConfig(text_config=text_model.config, audio_token_id=processor.audio_token_id, **config_kwargs)
        with torch.device("meta"):
            model = cls(config)
        model.language_model = text_model
        model.generation_config = copy.deepcopy(text_model.generation_config)
        if model.generation_config.max_new_tokens is None:
            model.generation_config.max_new_tokens = DEFAULT_MAX_NEW_TOKENS
        new_modules = [m for m in (model.audio_frontend, model.multi_modal_projector, model.mel_head) if m is not None]
        for module in new_modules:
            module.to_empty(device=text_model.device)
            module.apply(model._init_weights)
        return model.to(text_model.dtype)

    # ------------------------------------------------------------------ embeddings plumbing
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

    # ------------------------------------------------------------------ audio
    def fit_feature_normalization(self, input_features: torch.Tensor, input_features_mask: torch.Tensor) -> None:
        """
        Estimate the global per-bin mean/std of log-mel frames from training data (a large batch of
        `input_features` with its mask). Phi-4-MM ships these statistics in its checkpoint; a new model needs them
        before training, or the linear projection sees inputs of scale ~10 and learns far more slowly.
        """
        self.audio_frontend.norm.fit(input_features, input_features_mask)

    def get_audio_features(
        self, input_features: torch.Tensor, input_features_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Project log-mel frames to LLM embeddings.

        Args:
            input_features (`torch.Tensor` of shape `(B, T, M)`): log-mel frames from `MelLLMFeatureExtractor`.
            input_features_mask (`torch.Tensor` of shape `(B, T)`, *optional*): True on real frames.

        Returns:
            `(audio_embeds, patch_mask)`: `(B, P, D)` embeddings and the `(B, P)` mask of patches that hold audio.
        """
        if input_features.ndim != 3 or input_features.shape[-1] != self.config.num_mel_bins:
            raise ValueError(
                f"input_features must have shape (batch, frames, {self.config.num_mel_bins}), got "
                f"{tuple(input_features.shape)}."
            )
        if input_features_mask is None:
            input_features_mask = torch.ones(input_features.shape[:2], dtype=torch.bool, device=input_features.device)
        features = input_features.to(next(self.multi_modal_projector.parameters()).dtype)
        patches, patch_mask = self.audio_frontend(features, input_features_mask.bool())
        return self.multi_modal_projector(patches), patch_mask

    def frontend_parameter_counts(self) -> dict[str, int]:
        """
        Trainable parameters of the audio path by part: `conv` (subsampling), `encoder` (conformer blocks), `projector`,
        and their `total`; what the encoder-free model saves over the encoder baseline (about 460 M for Phi-4-MM).
        """
        frontend = self.audio_frontend
        counts = {
            "conv": sum(p.numel() for p in frontend.subsampling.parameters()),
            "encoder": sum(p.numel() for p in frontend.encoder.parameters()) if frontend.encoder is not None else 0,
            "projector": sum(p.numel() for p in self.multi_modal_projector.parameters()),
        }
        counts["total"] = sum(counts.values())
        return counts

    def get_placeholder_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) True where an audio patch goes."""
        if self.config.audio_token_id is None:
            raise ValueError("config.audio_token_id is not set, so audio cannot be placed in the prompt.")
        return input_ids == self.config.audio_token_id

    def merge_audio_embeddings(
        self,
        input_ids: torch.Tensor,
        inputs_embeds: torch.Tensor,
        input_features: torch.Tensor,
        input_features_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Scatter the real audio patches, in order, over the placeholder positions, after checking the counts."""
        audio_embeds, patch_mask = self.get_audio_features(input_features, input_features_mask)
        placeholder_mask = self.get_placeholder_mask(input_ids)
        num_placeholders, num_patches = int(placeholder_mask.sum()), int(patch_mask.sum())
        if num_placeholders != num_patches:
            raise ValueError(
                f"The prompt has {num_placeholders} audio placeholder tokens (id {self.config.audio_token_id}) but "
                f"the audio gives {num_patches} patches ({patch_mask.sum(-1).tolist()} per clip). Build inputs with "
                "MelLLMProcessor, which inserts MelLLMFeatureExtractor.num_audio_tokens() placeholders per clip."
            )
        audio_embeds = audio_embeds[patch_mask].to(inputs_embeds.device, inputs_embeds.dtype)  # (ΣP, D)
        return inputs_embeds.masked_scatter(placeholder_mask.unsqueeze(-1).to(inputs_embeds.device), audio_embeds)

    # ------------------------------------------------------------------ forward
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
        **kwargs,
    ) -> MelLLMOutputWithPast:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`): prompt tokens with audio placeholders.
            input_features (`torch.Tensor` of shape `(B, T, M)`, *optional*): log-mel frames; omit after the prefill.
            input_features_mask (`torch.Tensor` of shape `(B, T)`, *optional*): True on real frames.
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 on real tokens (left or right padding).
            position_ids (`torch.LongTensor`, *optional*): derived from `attention_mask` when omitted, so padded and
                unpadded prompts see the same positions.
                Given without `attention_mask`, they mark packed rows: each restart at 0 opens a segment that attends
                only to itself (what `training.data.pack_batch` builds).
            labels (`torch.LongTensor` of shape `(B, L)`, *optional*): next-token targets, -100 where ignored.
            mel_targets (`torch.Tensor` of shape `(B, T, M)`, *optional*): TTS training (needs `config.tts_head`):
                log-mel frames to speak after each row's prompt. Row i's audio placeholders receive these patches
                (teacher forcing, through the same CMVN + front end + projector as ASR audio) and the position
                before each placeholder learns to predict that patch. In a mixed batch, rows are either ASR
                (`input_features`) or TTS (`mel_targets`); both then hold one clip per row.
            mel_target_mask (`torch.Tensor` of shape `(B, T)`, *optional*): True on real target frames; a row with
                no True entry is not a TTS row.
            **kwargs: passed to the backbone (e.g. `num_items_in_batch` for a loss averaged over the whole batch).

        Returns:
            `MelLLMOutputWithPast` with `loss` (text loss from `labels` plus the weighted TTS loss), `logits`,
            `past_key_values`, and for TTS batches `tts_loss` and its `tts_loss_terms`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        tts_rows = None
        if mel_targets is not None:
            if self.mel_head is None:
                raise ValueError("mel_targets need a TTS head; build the model with MelLLMConfig(tts_head=True).")
            if input_ids is None:
                raise ValueError("mel_targets need input_ids to locate the audio placeholders, not inputs_embeds.")
            if mel_target_mask is None:
                mel_target_mask = torch.ones(mel_targets.shape[:2], dtype=torch.bool, device=mel_targets.device)
            mel_target_mask = mel_target_mask.bool()
            tts_rows = mel_target_mask.any(-1)  # (B,)
            fed_back = mel_targets
            if self.training and self.config.tts_scheduled_sampling > 0:
                fed_back = self._mix_in_own_predictions(
                    input_ids, input_features, input_features_mask, attention_mask, mel_targets, mel_target_mask
                )
            input_features, input_features_mask = self._with_tts_features(
                input_features, input_features_mask, fed_back, mel_target_mask
            )
            if labels is not None and not (labels != -100).any():
                labels = None  # a TTS-only batch: a text loss over zero tokens would be NaN
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
            if input_features is not None:
                inputs_embeds = self.merge_audio_embeddings(
                    input_ids, inputs_embeds, input_features, input_features_mask
                )
        elif input_features is not None:
            raise ValueError("input_features need input_ids to locate the audio placeholders, not inputs_embeds.")
        if tts_rows is not None and self.training and self.config.tts_input_dropout > 0:
            fed_back = (self.get_placeholder_mask(input_ids) & tts_rows[:, None])[..., None]  # (B, L, 1)
            dropped = nn.functional.dropout(inputs_embeds, self.config.tts_input_dropout, training=True)
            inputs_embeds = torch.where(fed_back, dropped, inputs_embeds)
        self._check_length(inputs_embeds, past_key_values)
        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2:
            past_length = past_key_values.get_seq_length() if past_key_values is not None else 0
            if past_length == 0:
                position_ids = positions_from_mask(attention_mask)
        with_ctc = (
            self.config.ctc_loss_weight > 0 and labels is not None and input_features is not None and tts_rows is None
        )
        if attention_mask is None and position_ids is not None and past_key_values is None:
            # Packed rows (`position_ids` restart at each segment): transformers derives the block-causal mask
            # from them, but only when no cache is passed, and a packed row could not be continued anyway.
            use_cache = False
            if with_ctc or tts_rows is not None:
                raise ValueError("Packed rows (position_ids without attention_mask) support the ASR text loss only.")
        if tts_rows is not None or with_ctc:
            kwargs["output_hidden_states"] = True
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
        if tts_rows is not None:
            tts_loss, terms = self._tts_loss(
                outputs.hidden_states[-1], input_ids, tts_rows, mel_targets, mel_target_mask
            )
            weighted = self.config.tts_loss_weight * tts_loss
            output.loss = weighted if output.loss is None else output.loss + weighted
            output.tts_loss, output.tts_loss_terms = tts_loss, terms
        if with_ctc:
            output.ctc_loss = self._ctc_loss(outputs.hidden_states[-1], input_ids, labels)
            output.loss = output.loss + self.config.ctc_loss_weight * output.ctc_loss
        return output

    def _ctc_loss(self, hidden: torch.Tensor, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CTC of the transcript tokens (labels without EOS) over each row's audio positions, scored by the LM head
        with the audio placeholder as blank; rows without a transcript are left out."""
        placeholder_mask = self.get_placeholder_mask(input_ids)  # (B, L)
        input_lengths = placeholder_mask.sum(-1)
        positions = placeholder_mask.long().argsort(dim=-1, descending=True, stable=True)[
            :, : int(input_lengths.max())
        ]
        audio_hidden = hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))  # (B, P, D)
        log_probs = self.get_output_embeddings()(audio_hidden).float().log_softmax(-1)  # (B, P, V)
        eos = self.generation_config.eos_token_id if self.generation_config is not None else None
        eos_ids = torch.tensor([eos] if isinstance(eos, int) else (eos or []), device=labels.device)
        is_target = (labels != -100) & ~torch.isin(labels, eos_ids)
        target_lengths = is_target.sum(-1)
        rows = (target_lengths > 0) & (input_lengths > 0)
        if not rows.any():
            return hidden.sum() * 0.0  # keeps the graph (and DDP's gradient sync) intact
        return nn.functional.ctc_loss(
            log_probs[rows].transpose(0, 1),
            labels[is_target & rows[:, None]],
            input_lengths[rows],
            target_lengths[rows],
            blank=self.config.audio_token_id,
            zero_infinity=True,
        )

    # ------------------------------------------------------------------ TTS
    def _with_tts_features(self, input_features, input_features_mask, mel_targets, mel_target_mask):
        """One (B, T, M) audio batch: TTS rows take their target frames, ASR rows their input clip."""
        if input_features is None:
            return mel_targets, mel_target_mask
        if input_features.shape[0] != mel_targets.shape[0]:
            raise ValueError(
                f"With mel_targets, input_features must hold one clip per row: got {input_features.shape[0]} clips "
                f"for {mel_targets.shape[0]} rows."
            )
        if input_features_mask is None:
            input_features_mask = torch.ones(input_features.shape[:2], dtype=torch.bool, device=input_features.device)
        tts_rows = mel_target_mask.any(-1)
        if (input_features_mask.bool().any(-1) & tts_rows).any():
            raise ValueError("A row has both input audio and mel_targets; give each row one or the other.")
        frames = max(input_features.shape[1], mel_targets.shape[1])
        pad = lambda x: nn.functional.pad(x, (0, 0, 0, frames - x.shape[1]))  # noqa: E731
        pad_mask = lambda m: nn.functional.pad(m.bool(), (0, frames - m.shape[1]))  # noqa: E731
        features = torch.where(tts_rows[:, None, None], pad(mel_targets), pad(input_features).to(mel_targets.dtype))
        mask = torch.where(tts_rows[:, None], pad_mask(mel_target_mask), pad_mask(input_features_mask))
        return features, mask

    def _tts_predictions(self, hidden, input_ids, tts_rows, mel_target_mask):
        """
        The hidden state just before each target placeholder, as (B, P, D) patches with their (B, P) mask and the
        (B, P·r) frame mask (the last patch may be partial).
        """
        step_frames = self.config.tts_frames_per_step
        placeholders = self.get_placeholder_mask(input_ids) & tts_rows[:, None]  # (B, L)
        predictors = nn.functional.pad(placeholders[:, 1:], (0, 1))  # (B, L) the position before each placeholder
        frame_mask = nn.functional.pad(mel_target_mask, (0, -mel_target_mask.shape[1] % step_frames))  # (B, P·r)
        patch_mask = frame_mask.reshape(frame_mask.shape[0], -1, step_frames).any(-1)  # (B, P)
        if int(predictors.sum()) != int(patch_mask.sum()):
            raise ValueError(
                f"The TTS rows hold {int(placeholders.sum())} audio placeholders but mel_targets give "
                f"{int(patch_mask.sum())} patches; build TTS inputs with MelLLMProcessor.tts_inputs."
            )
        hidden_patches = hidden.new_zeros(*patch_mask.shape, hidden.shape[-1])  # (B, P, D)
        hidden_patches[patch_mask] = hidden[predictors]
        return hidden_patches, patch_mask, frame_mask

    def _tts_loss(self, hidden, input_ids, tts_rows, mel_targets, mel_target_mask):
        """Teacher-forced mel loss: the hidden state just before each target placeholder predicts that patch."""
        hidden_patches, patch_mask, frame_mask = self._tts_predictions(hidden, input_ids, tts_rows, mel_target_mask)
        targets = self.audio_frontend.norm(mel_targets.to(hidden.dtype)).masked_fill(~mel_target_mask[..., None], 0)
        targets = nn.functional.pad(targets, (0, 0, 0, frame_mask.shape[1] - targets.shape[1]))
        target_patches = targets.reshape(targets.shape[0], patch_mask.shape[1], -1)  # (B, P, F)
        stop_targets = stop_targets_from_placeholders(
            self.get_placeholder_mask(input_ids) & tts_rows[:, None], patch_mask
        )
        step = self.mel_head.step(hidden_patches)
        return self.mel_head.loss(step, target_patches, frame_mask, stop_targets, self.config)

    def _predict_patches(
        self, input_ids, input_features, input_features_mask, attention_mask, fed_back, mel_target_mask, temperature
    ) -> tuple[MelHeadStep, torch.Tensor, torch.Tensor]:
        """
        One LLM pass with `fed_back` log-mel frames as the TTS rows' audio input: the mel head's step for every
        patch (each predicted from the text and the fed-back patches before it), with the (B, P) patch mask and the
        (B, P·r) frame mask.
        """
        features, features_mask = self._with_tts_features(
            input_features, input_features_mask, fed_back, mel_target_mask
        )
        embeds = self.merge_audio_embeddings(
            input_ids, self.get_input_embeddings()(input_ids), features, features_mask
        )
        self._check_length(embeds, None)
        position_ids = positions_from_mask(attention_mask) if attention_mask is not None else None
        hidden = self._final_hidden(embeds, attention_mask, position_ids)
        hidden_patches, patch_mask, frame_mask = self._tts_predictions(
            hidden, input_ids, mel_target_mask.any(-1), mel_target_mask
        )
        return self.mel_head.step(hidden_patches, temperature=temperature), patch_mask, frame_mask

    @torch.no_grad()
    def _mix_in_own_predictions(
        self, input_ids, input_features, input_features_mask, attention_mask, mel_targets, mel_target_mask
    ) -> torch.Tensor:
        """
        Scheduled sampling for TTS (Duckworth et al., 2019, "Parallel Scheduled Sampling"): a teacher-forced pass
        without gradients predicts every patch, then each fed-back patch is replaced by that prediction with
        probability `tts_scheduled_sampling`. With `tts_scheduled_sampling_passes` = k, pass i reads pass i−1's
        mixture, so a prediction may rest on up to k generations of the model's own output. The model thus learns to
        continue from its own, smoother output, which is what it reads when it speaks, not from recordings only.
        Returns log-mel frames shaped like `mel_targets` to feed back; the loss keeps the real targets.
        """
        fed_back, frames_per_step = mel_targets, self.config.tts_frames_per_step
        for _ in range(self.config.tts_scheduled_sampling_passes):
            step, patch_mask, _ = self._predict_patches(
                input_ids, input_features, input_features_mask, attention_mask, fed_back, mel_target_mask, 1.0
            )
            frames = self.audio_frontend.norm.denormalize(self.mel_head.to_frames(step.patch))  # what generation feeds
            chosen = torch.rand(patch_mask.shape, device=patch_mask.device) < self.config.tts_scheduled_sampling
            chosen = chosen.repeat_interleave(frames_per_step, dim=1)[:, : mel_targets.shape[1]]
            replace = (chosen & mel_target_mask)[..., None]
            fed_back = torch.where(replace, frames[:, : mel_targets.shape[1]].to(mel_targets.dtype), mel_targets)
        return fed_back

    def _embed_generated(self, frames: torch.Tensor) -> torch.Tensor:
        """LLM input for the newest generated patch: log-mel (B, k·r, M) holding the last k = context patches."""
        embeds, _ = self.get_audio_features(frames)
        return embeds[:, -1:]  # (B, 1, D)

    def _final_hidden(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None, position_ids, cache=None
    ) -> torch.Tensor:
        """One LLM pass, cached when `cache` is given; the final hidden states (B, L, D), which the mel head reads."""
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=cache is not None,
            output_hidden_states=True,
            logits_to_keep=1,
        )
        return outputs.hidden_states[-1]

    @torch.no_grad()
    def generate_speech(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        max_new_frames: int = 1000,
        temperature: float = 1.0,
        stop_threshold: float = 0.5,
        min_new_frames: int = 0,
        seed: int | None = None,
        max_frames_per_word: int = 300,
    ) -> MelLLMSpeechOutput:
        r"""
        Speak the text prompt(s) autoregressively: each step samples the next patch from the mel head, feeds it back
        through the audio input path with the KV cache, and stops a clip when its stop probability passes
        `stop_threshold`. The post-net then refines each clip, and frames are mapped back to log-mel.

        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`): TTS prompts (`MelLLMProcessor.tts_inputs`), left-padded.
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 on real tokens.
            max_new_frames (`int`, defaults to 1000): at most this many 10 ms frames per clip.
            temperature (`float`, defaults to 1.0): scale of the latent noise; 0 takes the mean (deterministic).
            stop_threshold (`float`, defaults to 0.5): stop probability that ends a clip.
            min_new_frames (`int`, defaults to 0): the stop head is ignored before this many frames.
            seed (`int`, *optional*): seeds one noise generator per row, so a clip is the same alone or in a batch.
            max_frames_per_word (`int`, defaults to 300): with words and speech interleaved (prompts holding one
                placeholder per word, `MelLLMProcessor(tts_interleave_words=True)`), a word whose stop never comes
                ends after this many frames.

        Returns:
            [`MelLLMSpeechOutput`] with `mel_features` (B, T, M), `mel_lengths` (B,) and `stop_probabilities`.

        Example:

        ```python
        >>> inputs = processor.tts_inputs(["turn the lights on"])
        >>> speech = model.generate_speech(**inputs, max_new_frames=400, seed=0)
        >>> speech.mel_features.shape[-1]
        80
        ```
        """
        if self.mel_head is None:
            raise ValueError("This model has no TTS head (config.tts_head=False), so it cannot generate speech.")
        if max_new_frames < 1:
            raise ValueError(f"max_new_frames must be positive, got {max_new_frames}.")
        step_frames, device = self.config.tts_frames_per_step, input_ids.device
        max_steps = math.ceil(max_new_frames / step_frames)
        limit = getattr(self.config.text_config, "max_position_embeddings", None)
        if limit is not None and input_ids.shape[1] + max_steps > limit:
            raise ValueError(
                f"The prompt has {input_ids.shape[1]} tokens and max_new_frames={max_new_frames} needs {max_steps} "
                f"more steps, past the language model's {limit} positions; shorten the text or max_new_frames."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        batch = input_ids.shape[0]
        generators = None
        if seed is not None:
            generators = [torch.Generator(device=device).manual_seed(seed) for _ in range(batch)]
        slots = self.get_placeholder_mask(input_ids) & attention_mask.bool()
        if slots.any():
            if not slots.any(-1).all():
                raise ValueError(
                    "Some TTS prompts hold audio placeholders (one per word: words and speech interleaved) and some "
                    "do not; build the batch with one MelLLMProcessor.tts_inputs call."
                )
            return self._generate_interleaved(
                input_ids, attention_mask, max_new_frames, temperature, stop_threshold, min_new_frames, generators,
                max_frames_per_word,
            )  # fmt: skip
        position_ids = positions_from_mask(attention_mask)
        cache = DynamicCache(config=self.config.text_config)
        hidden = self._final_hidden(self.get_input_embeddings()(input_ids), attention_mask, position_ids, cache)[:, -1]
        latent_size = self.mel_head.latent_proj.out_features // 2
        norm, context = self.audio_frontend.norm, self.audio_frontend.context_patches
        patches, stops = [], []
        lengths = torch.full((batch,), max_steps * step_frames, dtype=torch.long, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        for step_index in range(max_steps):
            noise = None
            if generators is not None:
                noise = torch.stack([torch.randn(latent_size, generator=g, device=device) for g in generators])
            noise = torch.randn(batch, latent_size, device=device) if noise is None else noise
            step = self.mel_head.step(hidden, noise.to(hidden.dtype), temperature)
            patches.append(step.patch)  # (B, F) CMVN space
            stop = torch.sigmoid(step.stop_logit.float())
            stops.append(stop)
            if (step_index + 1) * step_frames >= min_new_frames:
                newly = (stop > stop_threshold) & ~done
                lengths[newly] = (step_index + 1) * step_frames
                done |= newly
            if bool(done.all()) or step_index == max_steps - 1:
                break
            recent = torch.stack(patches[-context:], 1).reshape(batch, -1, self.config.num_mel_bins)
            embeds = self._embed_generated(norm.denormalize(recent))  # (B, 1, D)
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
            position_ids = position_ids[:, -1:] + 1
            hidden = self._final_hidden(embeds.to(hidden.dtype), attention_mask, position_ids, cache)[:, -1]
        return self._finish_speech(torch.stack(patches, 1), lengths.clamp(max=max_new_frames), torch.stack(stops, 1))

    def _finish_speech(self, patches, lengths, stop_probabilities) -> MelLLMSpeechOutput:
        """Generated patches (B, S, F) in CMVN space → post-net-refined log-mel, zero past each clip's length."""
        frames = self.mel_head.to_frames(patches)  # (B, S·r, M)
        mask = torch.arange(frames.shape[1], device=frames.device)[None, :] < lengths[:, None]
        frames = self.mel_head.refine_spectrogram(frames, mask)
        mel = self.audio_frontend.norm.denormalize(frames).masked_fill(~mask[..., None], 0.0)[:, : int(lengths.max())]
        return MelLLMSpeechOutput(mel_features=mel, mel_lengths=lengths, stop_probabilities=stop_probabilities)

    def _interleaved_prompts(self, input_ids, attention_mask) -> tuple[list[list[int]], list[list[list[int]]]]:
        """Per row (padding dropped): the tokens before the first word's slot, and each later word's tokens."""
        prompts, upcoming = [], []
        for row, mask in zip(input_ids.tolist(), attention_mask.bool().tolist(), strict=True):
            tokens = [token for token, real in zip(row, mask, strict=True) if real]
            slots = [i for i, token in enumerate(tokens) if token == self.config.audio_token_id]
            prompts.append(tokens[: slots[0]])
            upcoming.append([tokens[a + 1 : b] for a, b in itertools.pairwise(slots)])
        return prompts, upcoming

    def _generate_interleaved(
        self, input_ids, attention_mask, max_new_frames, temperature, stop_threshold, min_new_frames, generators,
        max_frames_per_word,
    ) -> MelLLMSpeechOutput:  # fmt: skip
        """
        `generate_speech` for prompts with words and speech interleaved: each row's text up to its first placeholder
        goes in at once; then, one token per row and step, each row either speaks its current word (a patch from
        the mel head, fed back) or, once the stop head ends that word, reads the next word's tokens. Rows move
        through their words independently, so a batch gives each clip what it gives alone.
        """
        step_frames, device = self.config.tts_frames_per_step, input_ids.device
        batch, max_patches = input_ids.shape[0], math.ceil(max_new_frames / step_frames)
        word_patch_limit = max(1, math.ceil(max_frames_per_word / step_frames))
        min_patches = math.ceil(min_new_frames / step_frames)
        prompts, upcoming = self._interleaved_prompts(input_ids, attention_mask)
        pad_id = self.generation_config.pad_token_id or 0
        width = max(len(p) for p in prompts)
        prompt_ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        position_ids = positions_from_mask(mask)
        cache = DynamicCache(config=self.config.text_config)
        hidden = self._final_hidden(self.get_input_embeddings()(prompt_ids), mask, position_ids, cache)[:, -1]
        latent_size = self.mel_head.latent_proj.out_features // 2
        norm, context = self.audio_frontend.norm, self.audio_frontend.context_patches
        spoken = [[] for _ in range(batch)]  # per row: patches (F,) in CMVN space
        stops = [[] for _ in range(batch)]
        pending = [[] for _ in range(batch)]  # tokens of the next word still to read
        in_word, done = [0] * batch, [False] * batch
        while not all(done):
            speaking = [not done[r] and not pending[r] for r in range(batch)]
            noise = torch.zeros(batch, latent_size, device=device)
            for r in range(batch):
                if speaking[r]:
                    noise[r] = torch.randn(latent_size, generator=generators[r] if generators else None, device=device)
            step = self.mel_head.step(hidden, noise.to(hidden.dtype), temperature)
            stop = torch.sigmoid(step.stop_logit.float())
            next_tokens = [pad_id] * batch
            for r in range(batch):
                if speaking[r]:
                    spoken[r].append(step.patch[r])
                    stops[r].append(stop[r])
                    in_word[r] += 1
                    last_word = not upcoming[r]
                    word_ends = bool(stop[r] > stop_threshold) and (not last_word or len(spoken[r]) >= min_patches)
                    if word_ends or in_word[r] >= word_patch_limit:
                        if last_word:
                            done[r] = True
                        else:
                            pending[r], in_word[r] = upcoming[r].pop(0), 0
                    if len(spoken[r]) >= max_patches:
                        done[r] = True
                elif not done[r]:
                    next_tokens[r] = pending[r].pop(0)
            if all(done):
                break
            text_embeds = self.get_input_embeddings()(torch.tensor(next_tokens, device=device))[:, None]
            recent = torch.zeros(batch, context, step.patch.shape[-1], dtype=step.patch.dtype, device=device)
            for r in range(batch):
                history = spoken[r][-context:]
                if history:
                    recent[r, context - len(history) :] = torch.stack(history)
            frames = recent.reshape(batch, -1, self.config.num_mel_bins)
            patch_embeds = self._embed_generated(norm.denormalize(frames)).to(text_embeds.dtype)
            fed_patch = torch.tensor(speaking, device=device)[:, None, None]
            embeds = torch.where(fed_patch, patch_embeds, text_embeds)
            mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
            position_ids = position_ids[:, -1:] + 1
            hidden = self._final_hidden(embeds.to(hidden.dtype), mask, position_ids, cache)[:, -1]
        count = max(len(p) for p in spoken)
        patches = torch.zeros(batch, count, spoken[0][0].shape[-1], dtype=spoken[0][0].dtype, device=device)
        stop_probabilities = torch.zeros(batch, count, device=device)
        for r in range(batch):
            patches[r, : len(spoken[r])] = torch.stack(spoken[r])
            stop_probabilities[r, : len(stops[r])] = torch.stack(stops[r])
        lengths = torch.tensor([len(p) * step_frames for p in spoken], device=device).clamp(max=max_new_frames)
        return self._finish_speech(patches, lengths, stop_probabilities)

    @torch.no_grad()
    def teacher_forced_speech(
        self,
        input_ids: torch.LongTensor,
        mel_targets: torch.Tensor,
        mel_target_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> MelLLMSpeechOutput:
        r"""
        Every patch of the recorded speech predicted (at the latent mean) from the text and the recorded patches
        before it, then post-net refined: what the model would say if it never drifted. A diagnostic, not
        synthesis: intelligible here but not from `generate_speech` means the model reads the text but loses its
        way on its own output (`benchmarks/tts_eval.py` reports both).

        Args:
            input_ids, mel_targets, mel_target_mask, attention_mask: TTS training inputs,
                `MelLLMProcessor.tts_inputs(texts, audio=clips, ...)`; other keys are ignored.

        Returns:
            [`MelLLMSpeechOutput`] with `mel_features` (B, T, M) shaped like `mel_targets`, `mel_lengths` (B,) the
            recorded lengths, and `stop_probabilities` (B, P) of every patch.
        """
        if self.mel_head is None:
            raise ValueError("This model has no TTS head (config.tts_head=False), so it cannot predict speech.")
        if mel_target_mask is None:
            mel_target_mask = torch.ones(mel_targets.shape[:2], dtype=torch.bool, device=mel_targets.device)
        mel_target_mask = mel_target_mask.bool()
        was_training = self.training
        self.eval()  # no dropout in the backbone: the recorded patches, as they are
        try:
            step, _, frame_mask = self._predict_patches(
                input_ids, None, None, attention_mask, mel_targets, mel_target_mask, 0.0
            )
        finally:
            self.train(was_training)
        frames = self.mel_head.refine_spectrogram(self.mel_head.to_frames(step.patch), frame_mask)
        mel = self.audio_frontend.norm.denormalize(frames)[:, : mel_targets.shape[1]]
        return MelLLMSpeechOutput(
            mel_features=mel.masked_fill(~mel_target_mask[..., None], 0.0),
            mel_lengths=mel_target_mask.sum(-1),
            stop_probabilities=torch.sigmoid(step.stop_logit.float()),
        )

    def _check_length(self, inputs_embeds: torch.Tensor, past_key_values) -> None:
        """A prompt past the backbone's context gives silent garbage with RoPE models; refuse it instead."""
        limit = getattr(self.config.text_config, "max_position_embeddings", None)
        past_length = past_key_values.get_seq_length() if past_key_values is not None else 0
        total = past_length + inputs_embeds.shape[1]
        if limit is not None and total > limit:
            raise ValueError(
                f"The sequence has {total} tokens but the language model supports {limit} "
                "(max_position_embeddings). Long audio: use the ASR pipeline with chunk_length_s."
            )


__all__ = [
    "MelLLMForSpeechLM",
    "MelLLMMLPProjector",
    "MelLLMOutputWithPast",
    "MelLLMPreTrainedModel",
    "MelLLMSpeechOutput",
]
