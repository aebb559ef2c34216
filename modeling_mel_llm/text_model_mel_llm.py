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
    new_modules = [m for m in (model.audio_frontend, model.multi_modal_projector, model.mel_head) if m is not None]
    for module in new_modules:
        module.to_empty(device=text_model.device)
        module.apply(model._init_weights)
    return model.to(text_model.dtype)
