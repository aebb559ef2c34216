"""Building a Mel-LLM around an existing causal LM (`MelLLMForSpeechLM.from_text_model`): keep the LM's weights,
grow its embeddings for the processor's new tokens, start the audio path from fresh weights."""

import copy

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from .configuration_mel_llm import MelLLMConfig


def mel_llm_around(cls, text_model, processor, dtype: torch.dtype | None = None, **config_kwargs):
    """`cls` (MelLLMForSpeechLM) around `text_model` (a loaded model, or a Hub id / path), set up for `processor`."""
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
    generation_config = copy.deepcopy(text_model.generation_config)
    generation_config.max_new_tokens = generation_config.max_new_tokens or model.generation_config.max_new_tokens
    generation_config.segment_separator_token_ids = processor.segment_separator_token_ids  # long-form joins
    generation_config._from_model_config = False  # else loading drops the field above
    model.generation_config = generation_config
    fresh = (model.audio_frontend, model.multi_modal_projector, model.mel_head, model.speech_latent)
    new_modules = [m for m in fresh if m is not None]
    for module in new_modules:
        module.to_empty(device=text_model.device)
        module.apply(model._init_weights)
    return model.to(text_model.dtype)


def check_context(text_config, num_tokens: int) -> int | None:
    """A sequence past the backbone's context gives silent garbage with RoPE models; refuse it instead. Returns the
    positions left after `num_tokens` (None for a backbone without a limit)."""
    limit = getattr(text_config, "max_position_embeddings", None)
    if limit is not None and num_tokens > limit:
        raise ValueError(
            f"The sequence is too long: it needs {num_tokens} positions (a static cache: all it holds) but the "
            f"language model supports {limit} (max_position_embeddings). Long audio: use the ASR pipeline with "
            "chunk_length_s; long text to speak: split it into sentences or lower max_new_frames; a static "
            "cache: lower max_new_tokens."
        )
    return None if limit is None else limit - num_tokens
