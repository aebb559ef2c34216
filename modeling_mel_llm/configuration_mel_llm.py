"""MelLLMConfig: how log-mel frames become LLM tokens, plus the backbone's own config. Next: modeling_mel_llm.py."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec


FRONTENDS = ("stack", "conv", "encoder")
PROJECTOR_TYPES = ("linear", "mlp")
UTTERANCE_NORMS = ("none", "mean", "meanvar")
AUTO_MAP = {
    "AutoConfig": "configuration_mel_llm.MelLLMConfig",
    "AutoModel": "modeling_mel_llm.MelLLMForSpeechLM",
    "AutoModelForSpeechSeq2Seq": "modeling_mel_llm.MelLLMForSpeechLM",
}
TTS_AUTO_MAP = {"AutoModelForTextToWaveform": "modeling_mel_llm.MelLLMForSpeechLM"}
ASR_PIPELINE = {
    "automatic-speech-recognition": {
        "impl": "pipeline_mel_llm.MelLLMSpeechRecognitionPipeline",
        "pt": ["AutoModelForSpeechSeq2Seq"],
        "type": "multimodal",
    }
}
TTS_PIPELINE = {
    "text-to-speech": {
        "impl": "pipeline_tts_mel_llm.MelLLMTextToSpeechPipeline",
        "pt": ["AutoModelForTextToWaveform"],
        "type": "text",
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
        utterance_norm (`str`, defaults to `"none"`):
            Per-clip normalisation of the log-mel after the global one: `"mean"` subtracts each clip's per-bin mean
            over its real frames (cepstral mean normalisation: a voice's or channel's fixed spectral tilt and the
            recording level drop out), `"meanvar"` also divides by its per-bin standard deviation. ASR only: a
            spoken patch is fed back alone, with no clip to normalise over.
        audio_token_id (`int`, *optional*):
            Id of the audio placeholder token in the backbone vocabulary; each placeholder receives one audio patch.
        projector_bias (`bool`, defaults to `True`):
            Whether the audio → LLM linear projection has a bias.
        projector_type (`str`, defaults to `"linear"`):
            `"linear"`: one linear layer (the paper's projection). `"mlp"`: Linear → GELU → Linear, the shape of
            Phi-4-MM's speech projector, so a converted checkpoint keeps its trained projector exactly.
        tts_head (`bool`, defaults to `False`):
            Add the MELLE-style next-token VAE mel head (`mel_head.py`) so the model also speaks. Off: an ASR-only
            model with no head weights.
        tts_frames_per_step (`int`, *optional*):
            Reduction factor: mel frames predicted per LLM step. Each predicted patch is fed back through the audio
            input path as one audio token, so it must equal `frames_per_patch` (the default).
        tts_latent_dim (`int`, *optional*):
            Width of the sampled latent. `None`: the latent is the patch itself and the KL term pulls N(μ, σ²)
            towards N(target, I) (MELLE's form); an integer: a smaller latent, KL to N(0, I), then a linear map to
            the patch.
        tts_mlp_size (`int`, defaults to 512): hidden width of the residual MLP that refines the sampled patch.
        tts_postnet_layers (`int`, defaults to 5): conv layers of the residual post-net (0 disables it).
        tts_postnet_channels (`int`, defaults to 256): channels of the post-net.
        tts_postnet_kernel (`int`, defaults to 5): odd kernel size (frames) of the post-net convolutions.
        tts_loss_weight (`float`, defaults to 1.0): weight of the whole TTS loss next to the text loss.
        tts_kl_weight (`float`, defaults to 0.1): weight of the KL term (MELLE: 0.1 × the ½-weighted KL).
        tts_flux_weight (`float`, defaults to 0.0): weight of MELLE's spectral-flux term, −‖μ_t − y_{t−1}‖₁,
            which rewards frame-to-frame change (MELLE uses 0.5).
        tts_stop_weight (`float`, defaults to 1.0): weight of the stop BCE.
        tts_stop_pos_weight (`float`, defaults to 20.0): BCE `pos_weight` of the one "stop" step per utterance.
        tts_input_dropout (`float`, defaults to 0.0): dropout on the embeddings of the teacher-forced mel patches fed
            back as TTS input, in training only (Transformer-TTS's pre-net dropout). Continuing the previous patch is
            easy; this makes the model read the text to know what comes next.
        tts_scheduled_sampling (`float`, defaults to 0.0): in training, the probability that a fed-back patch is the
            model's own prediction from a gradient-free teacher-forced pass instead of the recording (parallel
            scheduled sampling). A model trained on recordings only drifts when it reads its own smoother output at
            synthesis; this trains it on that input. Costs one extra forward pass per TTS batch and pass.
        tts_scheduled_sampling_passes (`int`, defaults to 1): gradient-free passes; pass i reads pass i−1's mixture,
            so fed-back patches can be predictions from predictions, as in free-running synthesis.
        ctc_loss_weight (`float`, defaults to 0.0): weight of an auxiliary CTC loss on the audio positions (not in
            the paper; training only). The LLM's last hidden states over the audio placeholders go through its own
            LM head (no new weights; the audio placeholder token is the CTC blank) and are scored against the
            transcript tokens. It teaches a small LLM trained from scratch where each word sits in the audio, which
            next-token prediction alone learns slowly; inference is unchanged.

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
    utterance_norm: str = "none"
    audio_token_id: int | None = None
    projector_bias: bool = True
    projector_type: str = "linear"
    encoder_layers: int = 24
    encoder_attention_heads: int = 16
    encoder_ffn_dim: int = 1536
    encoder_conv_kernel_size: int = 3
    encoder_bias_max_distance: int = 500
    encoder_chunk_length: int = 500
    tts_head: bool = False
    tts_frames_per_step: int | None = None
    tts_latent_dim: int | None = None
    tts_mlp_size: int = 512
    tts_postnet_layers: int = 5
    tts_postnet_channels: int = 256
    tts_postnet_kernel: int = 5
    tts_loss_weight: float = 1.0
    tts_kl_weight: float = 0.1
    tts_flux_weight: float = 0.0
    tts_stop_weight: float = 1.0
    tts_stop_pos_weight: float = 20.0
    tts_input_dropout: float = 0.0
    tts_scheduled_sampling: float = 0.0
    tts_scheduled_sampling_passes: int = 1
    ctc_loss_weight: float = 0.0
    custom_pipelines: dict | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.custom_pipelines is None:
            self.custom_pipelines = {**ASR_PIPELINE, **(TTS_PIPELINE if self.tts_head else {})}
        if self.tts_head and self.tts_frames_per_step is None:
            self.tts_frames_per_step = self.frames_per_patch
        # Written to config.json beside the code files, so the Auto classes load the model with trust_remote_code.
        self.auto_map = {
            **AUTO_MAP,
            **(TTS_AUTO_MAP if self.tts_head else {}),
            **(getattr(self, "auto_map", None) or {}),
        }
        self._validate()

    def _validate(self) -> None:
        """Fail early with the field name and the fix, not deep inside the model."""
        if self.frontend not in FRONTENDS:
            raise ValueError(f"frontend={self.frontend!r} is not supported; choose one of {FRONTENDS}.")
        if self.utterance_norm not in UTTERANCE_NORMS:
            raise ValueError(
                f"utterance_norm={self.utterance_norm!r} is not supported; choose one of {UTTERANCE_NORMS}."
            )
        if self.ctc_loss_weight < 0:
            raise ValueError(f"ctc_loss_weight must be >= 0, got {self.ctc_loss_weight}.")
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
        if self.tts_head:
            self._validate_tts()
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

    def _validate_tts(self) -> None:
        if self.frontend == "encoder":
            raise ValueError(
                "tts_head needs a causal audio input path (frontend='stack' or 'conv'): the encoder front end's "
                "conformer attends over the whole clip, so generated patches cannot be fed back one by one."
            )
        if self.utterance_norm != "none":
            raise ValueError(
                f"tts_head cannot use utterance_norm={self.utterance_norm!r}: generated patches go back into the model "
                "one at a time, with no whole clip to take a mean over. Use utterance_norm='none'."
            )
        if self.tts_frames_per_step != self.frames_per_patch:
            raise ValueError(
                f"tts_frames_per_step={self.tts_frames_per_step} must equal frames_per_patch={self.frames_per_patch}: "
                "each predicted patch goes back into the model as one audio token."
            )
        if self.tts_latent_dim is not None and self.tts_latent_dim < 1:
            raise ValueError(f"tts_latent_dim must be positive or None, got {self.tts_latent_dim}.")
        if self.tts_postnet_layers < 0 or self.tts_postnet_kernel % 2 == 0:
            raise ValueError(
                f"tts_postnet_layers must be >= 0 and tts_postnet_kernel odd, got {self.tts_postnet_layers} and "
                f"{self.tts_postnet_kernel}."
            )
        if not 0.0 <= self.tts_input_dropout < 1.0:
            raise ValueError(f"tts_input_dropout must be within [0, 1), got {self.tts_input_dropout}.")
        if not 0.0 <= self.tts_scheduled_sampling <= 1.0:
            raise ValueError(f"tts_scheduled_sampling must be within [0, 1], got {self.tts_scheduled_sampling}.")
        if self.tts_scheduled_sampling_passes < 1:
            raise ValueError(f"tts_scheduled_sampling_passes must be >= 1, got {self.tts_scheduled_sampling_passes}.")
        if self.tts_stop_pos_weight <= 0:
            raise ValueError(f"tts_stop_pos_weight must be positive, got {self.tts_stop_pos_weight}.")

    def with_tts_head(self, **tts_fields) -> "MelLLMConfig":
        """
        This config plus a mel head (`tts_*` fields as given, else defaults), with the TTS pipeline and Auto class
        registered. For TTS training from a trained ASR model: `MelLLMForSpeechLM.from_pretrained(path,
        config=config.with_tts_head())` keeps every trained weight and initialises only the head.
        """
        unknown = sorted(key for key in tts_fields if not key.startswith("tts_"))
        if unknown:
            raise ValueError(f"with_tts_head takes tts_* fields only, got {unknown}.")
        values = {**self.to_dict(), "tts_head": True, "custom_pipelines": None, **tts_fields}
        return type(self).from_dict(values)

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
