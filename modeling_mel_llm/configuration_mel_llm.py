"""MelLLMConfig: how log-mel frames become LLM tokens, plus the backbone's own config. Next: modeling_mel_llm.py."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec


FRONTENDS = ("stack", "conv", "encoder")
PROJECTOR_TYPES = ("linear", "mlp")
AUTO_MAP = {
    "AutoConfig": "configuration_mel_llm.MelLLMConfig",
    "AutoModel": "modeling_mel_llm.MelLLMForSpeechLM",
    "AutoModelForSpeechSeq2Seq": "modeling_mel_llm.MelLLMForSpeechLM",
}
ASR_PIPELINE = {
    "automatic-speech-recognition": {
        "impl": "pipeline_mel_llm.MelLLMSpeechRecognitionPipeline",
        "pt": ["AutoModelForSpeechSeq2Seq"],
        "type": "multimodal",
    }
}


@strict
class MelLLMConfig(PreTrainedConfig):
    r"""
    Configuration of an encoder-free speech LLM: log-mel patches → one linear projection → a decoder-only causal LM.

    Args:
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the causal LM backbone (any `AutoModelForCausalLM` type: Llama, Qwen2, Phi-3, ...).
            A dict must carry `model_type`; `None` gives a default Llama config.
        num_mel_bins (`int`, defaults to 80):
            Mel bins per frame (M), as produced by `MelLLMFeatureExtractor`.
        frontend (`str`, defaults to `"stack"`):
            `"stack"`: `frames_per_patch` consecutive frames are concatenated into one patch (the paper's encoder-free
            model). `"conv"`: the NeMo depthwise-striding subsampling kept from Phi-4-multimodal's audio front end.
            `"encoder"`: the same subsampling followed by Phi-4-MM-style conformer blocks (the paper's encoder
            baseline; randomly initialised unless converted from Phi-4-MM with `training/convert_phi4mm.py`).
        frames_per_patch (`int`, defaults to 8):
            Mel frames (10 ms each) per LLM token; 8 gives 80 ms per token like Phi-4-MM. For `"conv"` and
            `"encoder"` it must be a power of two (one stride-2 conv per factor of two).
        conv_channels (`int`, defaults to 1024):
            Channels of the strided convolutions (`"conv"`/`"encoder"`; Phi-4-MM uses 1024).
        conv_output_size (`int`, defaults to 1024):
            Width of the linear layer after the convolutions, and the conformer width for `"encoder"` (Phi-4-MM's
            encoder width is 1024).
        encoder_layers (`int`, defaults to 24):
            Conformer blocks (`"encoder"` only; Phi-4-MM has 24).
        encoder_attention_heads (`int`, defaults to 16):
            Attention heads per conformer block; must divide `conv_output_size`.
        encoder_ffn_dim (`int`, defaults to 1536):
            Hidden width of the two half-step feed-forward modules of each block.
        encoder_conv_kernel_size (`int`, defaults to 3):
            Kernel of the causal depthwise convolution of each block.
        encoder_bias_max_distance (`int`, defaults to 500):
            Relative positions beyond this many tokens share one T5-style attention bias (Phi-4-MM's checkpoint: 500).
        encoder_chunk_length (`int`, defaults to 500):
            Tokens attend only within blocks of this many tokens (40 s at 80 ms per token), as Phi-4-MM processes
            long audio in 500-token chunks.
        audio_token_id (`int`, *optional*):
            Id of the audio placeholder token in the backbone vocabulary; each placeholder receives one audio patch.
        projector_bias (`bool`, defaults to `True`):
            Whether the audio → LLM linear projection has a bias.
        projector_type (`str`, defaults to `"linear"`):
            `"linear"`: one linear layer (the paper's projection). `"mlp"`: Linear → GELU → Linear, the shape of
            Phi-4-MM's speech projector, so a converted checkpoint keeps its trained projector exactly.

    Example:

    ```python
    >>> from transformers import LlamaConfig
    >>> from modeling_mel_llm import MelLLMConfig, MelLLMForSpeechLM
    >>> text_config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    ...                           num_attention_heads=4, num_key_value_heads=2, vocab_size=128)
    >>> config = MelLLMConfig(text_config=text_config, audio_token_id=127)
    >>> model = MelLLMForSpeechLM(config)
    ```
    """

    model_type = "mel_llm"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    text_config: dict | PreTrainedConfig | None = None
    num_mel_bins: int = 80
    frontend: str = "stack"
    frames_per_patch: int = 8
    conv_channels: int = 1024
    conv_output_size: int = 1024
    audio_token_id: int | None = None
    projector_bias: bool = True
    projector_type: str = "linear"
    encoder_layers: int = 24
    encoder_attention_heads: int = 16
    encoder_ffn_dim: int = 1536
    encoder_conv_kernel_size: int = 3
    encoder_bias_max_distance: int = 500
    encoder_chunk_length: int = 500
    custom_pipelines: dict | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.custom_pipelines is None:
            self.custom_pipelines = ASR_PIPELINE
        # Written to config.json beside the code files, so the Auto classes load the model with trust_remote_code.
        self.auto_map = {**AUTO_MAP, **(getattr(self, "auto_map", None) or {})}
        self._validate()

    def _validate(self) -> None:
        """Fail early with the field name and the fix, not deep inside the model."""
        if self.frontend not in FRONTENDS:
            raise ValueError(f"frontend={self.frontend!r} is not supported; choose one of {FRONTENDS}.")
        if self.num_mel_bins < 1:
            raise ValueError(f"num_mel_bins must be positive, got {self.num_mel_bins}.")
        if self.frames_per_patch < 1:
            raise ValueError(f"frames_per_patch must be positive, got {self.frames_per_patch}.")
        if self.projector_type not in PROJECTOR_TYPES:
            raise ValueError(
                f"projector_type={self.projector_type!r} is not supported; choose one of {PROJECTOR_TYPES}."
            )
        if self.frontend in ("conv", "encoder"):
            if self.frames_per_patch < 2 or self.frames_per_patch & (self.frames_per_patch - 1):
                raise ValueError(
                    f"frontend={self.frontend!r} subsamples by stride-2 convolutions, so frames_per_patch must be a power of two "
                    f">= 2, got {self.frames_per_patch}."
                )
            if self.conv_channels < 1 or self.conv_output_size < 1:
                raise ValueError(
                    f"conv_channels and conv_output_size must be positive, got {self.conv_channels} and "
                    f"{self.conv_output_size}."
                )
        if self.frontend == "encoder":
            self._validate_encoder()
        vocab_size = getattr(self.text_config, "vocab_size", None)
        if self.audio_token_id is not None and vocab_size is not None and not 0 <= self.audio_token_id < vocab_size:
            raise ValueError(
                f"audio_token_id={self.audio_token_id} is outside the backbone vocabulary (vocab_size={vocab_size}); "
                "add the audio token to the tokenizer and resize the embeddings first."
            )

    def _validate_encoder(self) -> None:
        for name in (
            "encoder_layers",
            "encoder_attention_heads",
            "encoder_ffn_dim",
            "encoder_conv_kernel_size",
            "encoder_bias_max_distance",
            "encoder_chunk_length",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive for frontend='encoder', got {getattr(self, name)}.")
        if self.conv_output_size % self.encoder_attention_heads:
            raise ValueError(
                f"encoder_attention_heads={self.encoder_attention_heads} must divide the conformer width "
                f"conv_output_size={self.conv_output_size}."
            )

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size

    @property
    def vocab_size(self) -> int:
        return self.text_config.vocab_size

    @property
    def patch_size(self) -> int:
        """Values per stacked patch (`frames_per_patch` × `num_mel_bins`); 640 for the paper's setting."""
        return self.frames_per_patch * self.num_mel_bins


__all__ = ["MelLLMConfig"]
