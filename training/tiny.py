"""Tiny, offline building blocks: a byte-level BPE tokenizer trained on the spot and small backbone configs.

Used by the CPU recipe, the tests and the benchmarks; nothing here downloads anything.
"""

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, PreTrainedConfig, PreTrainedTokenizerFast

from modeling_mel_llm import MelLLMConfig, MelLLMForSpeechLM
from processing import MelLLMFeatureExtractor, MelLLMProcessor


DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DEFAULT_CORPUS = [
    " ".join(DIGIT_WORDS),
    "the quick brown fox jumps over the lazy dog",
    "pack my box with five dozen liquor jugs",
    "transcribe the audio clip into text",
]
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
FAMILIES = ("llama", "qwen2", "phi3")


def build_tokenizer(corpus: Iterable[str] = DEFAULT_CORPUS, vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on `corpus` (any text still encodes, byte by byte)."""
    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(corpus), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)


def tiny_text_config(
    family: str = "llama",
    vocab_size: int = 320,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_position_embeddings: int = 2048,
    **overrides,
) -> PreTrainedConfig:
    """A small causal-LM config of a given family (`llama`, `qwen2`, `phi3`, or any other `model_type`)."""
    return AutoConfig.for_model(
        family,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        **overrides,
    )


def build_tiny_processor(corpus: Iterable[str] = DEFAULT_CORPUS, frames_per_patch: int = 8) -> MelLLMProcessor:
    tokenizer = build_tokenizer(corpus)
    return MelLLMProcessor.from_text_tokenizer(tokenizer, MelLLMFeatureExtractor(frames_per_patch=frames_per_patch))


TINY_AUDIO_DEFAULTS = {  # a small conv (and, for frontend="encoder", a 2-block conformer) for tests and CPU runs
    "conv_channels": 32,
    "conv_output_size": 64,
    "conformer_layers": 2,
    "conformer_attention_heads": 4,
    "conformer_ffn_dim": 64,
    "conformer_bias_max_distance": 50,
}
TINY_TTS_HEAD = {"tts_head": True, "tts_mlp_size": 128, "tts_postnet_channels": 32, "tts_postnet_layers": 3}


def build_tiny_model(
    processor: MelLLMProcessor,
    family: str = "llama",
    frontend: str = "stack",
    audio_overrides: dict | None = None,
    tts_head: bool | dict = False,
    **text_overrides,
) -> MelLLMForSpeechLM:
    """
    A randomly initialised Mel-LLM whose vocabulary matches `processor`'s tokenizer. `audio_overrides` replace
    `TINY_AUDIO_DEFAULTS` (MelLLMConfig audio fields); `text_overrides` go to the text config. `tts_head=True` adds
    a small mel head (`TINY_TTS_HEAD`); a dict gives its config fields instead.
    """
    head_fields = {} if not tts_head else (TINY_TTS_HEAD if tts_head is True else {"tts_head": True, **tts_head})
    tokenizer = processor.tokenizer
    text_config = tiny_text_config(
        family,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **text_overrides,
    )
    config = MelLLMConfig(
        text_config=text_config,
        audio_token_id=processor.audio_token_id,
        frontend=frontend,
        frames_per_patch=processor.feature_extractor.frames_per_patch,
        **{**TINY_AUDIO_DEFAULTS, **(audio_overrides or {})},
        **head_fields,
    )
    model = MelLLMForSpeechLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.segment_separator_token_ids = processor.segment_separator_token_ids
    model.generation_config._from_model_config = False  # else loading drops the field above
    return model


__all__ = [
    "DIGIT_WORDS",
    "FAMILIES",
    "TINY_AUDIO_DEFAULTS",
    "TINY_TTS_HEAD",
    "build_tiny_model",
    "build_tiny_processor",
    "build_tokenizer",
    "tiny_text_config",
]
