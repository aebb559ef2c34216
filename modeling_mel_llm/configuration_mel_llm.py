"""MelLLMConfig: how log-mel frames become LLM tokens, plus the backbone's own config. Next: modeling_mel_llm.py."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import logging

from .speech_units_mel_llm import UNIT_INVENTORIES, unit_vocabulary


logger = logging.get_logger(__name__)


FRAME_SECONDS = 0.01  # one log-mel frame (MelLLMFeatureExtractor's hop: 160 samples at 16 kHz)
FRONTENDS = ("stack", "conv", "encoder", "unified")
SHARED_SPACES = ("posterior", "hidden")
PROJECTOR_TYPES = ("linear", "mlp")
SPEECH_LATENTS = ("continuous", "discrete")
ASR_INPUTS = ("latent", "mel")
# Fields of configs saved before the redesign (commit 49b21fd): training settings, and experiments that did not help
# (docs/RESULTS.md). Loading drops them when they hold the value that changes nothing at inference, and refuses a
# model that needs the removed code.
LEGACY_TRAINING_FIELDS = (
    "tts_frames_per_step",
    "tts_loss_weight",
    "tts_kl_weight",
    "tts_flux_weight",
    "tts_stop_weight",
    "tts_stop_pos_weight",
    "tts_input_dropout",
    "tts_scheduled_sampling",
    "tts_scheduled_sampling_passes",
    "ctc_loss_weight",
)
LEGACY_INFERENCE_FIELDS = {"utterance_norm": "none"}
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
            baseline; randomly initialised unless converted from Phi-4-MM with `training/tools/convert_phi4mm.py`).
            `"unified"`: TESU-LLM (`unified_encoder.py`): stacked patches → a small CTC encoder over `units` → blank-skip
            and merge → the shared space, which text reaches too (`unit_posteriors`), so the LLM learns from text.
        frames_per_patch (`int`, defaults to 8):
            Mel frames (10 ms each) per LLM token; 8 gives 80 ms per token like Phi-4-MM. For `"conv"` and
            `"encoder"` it must be a power of two (one stride-2 conv per factor of two).
        conv_channels (`int`, defaults to 1024):
            Channels of the strided convolutions (`"conv"`/`"encoder"`; Phi-4-MM uses 1024).
        conv_output_size (`int`, defaults to 1024):
            Width of the linear layer after the convolutions, and the conformer width for `"encoder"` (Phi-4-MM's
            encoder width is 1024).
        conformer_layers (`int`, defaults to 24):
            Conformer blocks (`"encoder"` only; Phi-4-MM has 24).
        conformer_attention_heads (`int`, defaults to 16):
            Attention heads per conformer block; must divide `conv_output_size`.
        conformer_ffn_dim (`int`, defaults to 1536):
            Hidden width of the two half-step feed-forward modules of each block.
        conformer_conv_kernel_size (`int`, defaults to 3):
            Kernel of the causal depthwise convolution of each block.
        conformer_bias_max_distance (`int`, defaults to 500):
            Relative positions beyond this many tokens share one T5-style attention bias (Phi-4-MM's checkpoint: 500).
        conformer_chunk_length (`int`, defaults to 500):
            Tokens attend only within blocks of this many tokens (40 s at 80 ms per token), as Phi-4-MM processes
            long audio in 500-token chunks.
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
        tts_latent_dim (`int`, *optional*):
            Width of the sampled latent. `None`: the latent is the patch itself and the KL term pulls N(μ, σ²)
            towards N(target, I) (MELLE's form); an integer: a smaller latent, KL to N(0, I), then a linear map to
            the patch.
        tts_mlp_size (`int`, defaults to 512): hidden width of the residual MLP that refines the sampled patch.
        tts_postnet_layers (`int`, defaults to 5): conv layers of the residual post-net (0 disables it).
        tts_postnet_channels (`int`, defaults to 256): channels of the post-net.
        tts_postnet_kernel (`int`, defaults to 5): odd kernel size (frames) of the post-net convolutions.
        speech_latent (`str`, defaults to `"continuous"`):
            `"continuous"`: the paper's path (linear projection in, VAE mel head out). `"discrete"`: MELD
            (`discrete_latent.py`): a conv encoder turns each patch into `latent_groups` codes of `latent_codes`, the
            LLM reads their embeddings, and with `tts_head` a prior head, Gaussian decoder and stop head speak.
        latent_codes (`int`, defaults to 256): codes per group (K).
        latent_groups (`int`, *optional*): codes per patch (G), dividing `frames_per_patch`; default one per frame.
        latent_encoder_channels (`int`, defaults to 256): channels of the posterior's convolutions.
        asr_input (`str`, defaults to `"latent"`): with discrete latents, what speech recognition reads: the codes
            (`"latent"`, so the text loss trains the encoder too) or the mel patches through the projector (`"mel"`,
            an ablation).

        units (`str`, defaults to `"chars"`): `"chars"` or `"phonemes"` (espeak-ng's, via `espeakng-loader`), what
            the unified encoder emits and text is spelled into. unit_vocabulary: the blank then the units (default:
            `speech_units_mel_llm.unit_vocabulary(units)`); saved, so a checkpoint keeps its inventory.
        shared_space (`str`, defaults to `"posterior"`): `"posterior"` (posterior × unit embedding table) or
            `"hidden"` (the speech encoder's merged states; a text encoder learns to produce them).
        blank_threshold (`float`, defaults to 0.9): speech frames whose blank probability exceeds it are skipped.
        unified_encoder_size (`int`, defaults to 192), unified_encoder_layers (`int`, defaults to 4),
            unified_text_encoder_layers (`int`, defaults to 2), unified_encoder_heads (`int`, defaults to 4): the
            unified encoders' width and depth.

    Training choices (loss weights, scheduled sampling, augmentation) are not part of the model: they live in
    `training/arguments.py` and each run's `run_config.yaml`, so a checkpoint saved mid-run has the same config as
    the final one.

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
    conformer_layers: int = 24
    conformer_attention_heads: int = 16
    conformer_ffn_dim: int = 1536
    conformer_conv_kernel_size: int = 3
    conformer_bias_max_distance: int = 500
    conformer_chunk_length: int = 500
    tts_head: bool = False
    tts_latent_dim: int | None = None
    tts_mlp_size: int = 512
    tts_postnet_layers: int = 5
    tts_postnet_channels: int = 256
    tts_postnet_kernel: int = 5
    speech_latent: str = "continuous"
    latent_codes: int = 256
    latent_groups: int | None = None
    latent_encoder_channels: int = 256
    asr_input: str = "latent"
    units: str = "chars"
    unit_vocabulary: list[str] | None = None
    shared_space: str = "posterior"
    blank_threshold: float = 0.9
    unified_encoder_size: int = 192
    unified_encoder_layers: int = 4
    unified_text_encoder_layers: int = 2
    unified_encoder_heads: int = 4
    custom_pipelines: dict | None = None

    def __post_init__(self, **kwargs):
        kwargs = _drop_legacy_fields(kwargs)
        for old_name in [key for key in kwargs if key in RENAMED_CONFORMER_FIELDS]:  # configs saved before the rename
            setattr(self, RENAMED_CONFORMER_FIELDS[old_name], kwargs.pop(old_name))
        super().__post_init__(**kwargs)
        if self.custom_pipelines is None:
            self.custom_pipelines = {**ASR_PIPELINE, **(TTS_PIPELINE if self.tts_head else {})}
        # Written to config.json beside the code files, so the Auto classes load the model with trust_remote_code.
        self.auto_map = {
            **AUTO_MAP,
            **(TTS_AUTO_MAP if self.tts_head else {}),
            **(getattr(self, "auto_map", None) or {}),
        }
        self._validate()

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """A causal LM's own config (another `model_type`: a Llama or Qwen2 checkpoint's) becomes the backbone of a
        new Mel-LLM, so `MelLLMForSpeechLM.from_pretrained(causal_lm_dir)` loads that LM under `language_model`."""
        if config_dict.get("model_type") not in (None, cls.model_type):
            config_dict = {"text_config": config_dict}
        return super().from_dict(config_dict, **kwargs)

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
        if self.tts_head:
            self._validate_tts()
        self._validate_latent()
        if self.frontend == "unified":
            self._validate_unified()
        vocab_size = getattr(self.text_config, "vocab_size", None)
        if self.audio_token_id is not None and vocab_size is not None and not 0 <= self.audio_token_id < vocab_size:
            raise ValueError(
                f"audio_token_id={self.audio_token_id} is outside the backbone vocabulary (vocab_size={vocab_size}); "
                "add the audio token to the tokenizer and resize the embeddings first."
            )

    def _validate_encoder(self) -> None:
        conformer = ("layers", "attention_heads", "ffn_dim", "conv_kernel_size", "bias_max_distance", "chunk_length")
        self._check_positive([f"conformer_{name}" for name in conformer], " for frontend='encoder'")
        if self.conv_output_size % self.conformer_attention_heads:
            raise ValueError(
                f"conformer_attention_heads={self.conformer_attention_heads} must divide the conformer width "
                f"conv_output_size={self.conv_output_size}."
            )

    def _validate_tts(self) -> None:
        if self.frontend == "encoder":
            raise ValueError(
                "tts_head needs a causal audio input path (frontend='stack' or 'conv'): the encoder front end's "
                "conformer attends over the whole clip, so generated patches cannot be fed back one by one."
            )
        if self.tts_latent_dim is not None and self.tts_latent_dim < 1:
            raise ValueError(f"tts_latent_dim must be positive or None, got {self.tts_latent_dim}.")
        if self.tts_postnet_layers < 0 or self.tts_postnet_kernel % 2 == 0:
            raise ValueError(
                f"tts_postnet_layers must be >= 0 and tts_postnet_kernel odd, got {self.tts_postnet_layers} and "
                f"{self.tts_postnet_kernel}."
            )

    def _validate_latent(self) -> None:
        if self.speech_latent not in SPEECH_LATENTS:
            raise ValueError(f"speech_latent={self.speech_latent!r}; choose one of {SPEECH_LATENTS}.")
        if self.asr_input not in ASR_INPUTS:
            raise ValueError(f"asr_input={self.asr_input!r}; choose one of {ASR_INPUTS}.")
        if self.speech_latent == "continuous":
            return
        if self.latent_groups is None:
            self.latent_groups = self.frames_per_patch
        if self.latent_groups < 1 or self.frames_per_patch % self.latent_groups:
            raise ValueError(
                f"latent_groups={self.latent_groups} must be a positive divisor of frames_per_patch="
                f"{self.frames_per_patch} (each group covers the same number of frames)."
            )
        if self.latent_codes < 2 or self.latent_encoder_channels < 1:
            raise ValueError(
                f"latent_codes must be >= 2 and latent_encoder_channels positive, got {self.latent_codes} and "
                f"{self.latent_encoder_channels}."
            )

    def _validate_unified(self) -> None:
        if self.units not in UNIT_INVENTORIES:
            raise ValueError(f"units={self.units!r}; choose one of {tuple(UNIT_INVENTORIES)}.")
        if self.unit_vocabulary is None:
            self.unit_vocabulary = unit_vocabulary(self.units)
        if len(self.unit_vocabulary) < 2 or len(set(self.unit_vocabulary)) != len(self.unit_vocabulary):
            raise ValueError("unit_vocabulary must hold the blank and at least one unit, each once.")
        if self.shared_space not in SHARED_SPACES:
            raise ValueError(f"shared_space={self.shared_space!r}; choose one of {SHARED_SPACES}.")
        if not 0.0 < self.blank_threshold <= 1.0:
            raise ValueError(f"blank_threshold must be within (0, 1], got {self.blank_threshold}.")
        if self.tts_head or self.speech_latent != "continuous":
            raise ValueError(
                "frontend='unified' is a speech-understanding front end: it has no tts_head or MELD latents."
            )
        sizes = ("encoder_size", "encoder_layers", "text_encoder_layers", "encoder_heads")
        self._check_positive([f"unified_{name}" for name in sizes])
        if self.unified_encoder_size % self.unified_encoder_heads:
            raise ValueError(
                f"unified_encoder_heads={self.unified_encoder_heads} must divide unified_encoder_size="
                f"{self.unified_encoder_size}."
            )

    def _check_positive(self, names: list[str], context: str = "") -> None:
        """Each named size field is at least 1, or a `ValueError` names it (and `context`)."""
        for name in names:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive{context}, got {getattr(self, name)}.")

    def with_tts_head(self, **tts_fields) -> "MelLLMConfig":
        """
        This config plus a mel head (`tts_*` fields as given, else defaults), with the TTS pipeline and Auto class
        registered. For TTS training from a trained ASR model: `MelLLMForSpeechLM.from_pretrained(path,
        config=config.with_tts_head())` keeps every trained weight and initialises only the head.
        """
        head_fields = {
            "tts_latent_dim",
            "tts_mlp_size",
            "tts_postnet_layers",
            "tts_postnet_channels",
            "tts_postnet_kernel",
        }
        unknown = sorted(set(tts_fields) - head_fields)
        if unknown:
            raise ValueError(
                f"with_tts_head takes the mel head's fields {sorted(head_fields)}, got {unknown}; loss weights and "
                "scheduled sampling are training arguments (training/arguments.py)."
            )
        values = {**self.to_dict(), "tts_head": True, "custom_pipelines": None, **tts_fields}
        return type(self).from_dict(values)

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size

    @property
    def vocab_size(self) -> int:
        """The backbone's vocabulary size (audio placeholder included)."""
        return self.text_config.vocab_size

    @vocab_size.setter
    def vocab_size(self, value: int) -> None:
        """Resizing the embeddings writes the new size here; it belongs to the backbone."""
        self.text_config.vocab_size = value

    @property
    def patch_size(self) -> int:
        """Values per stacked patch (`frames_per_patch` × `num_mel_bins`); 640 for the paper's setting."""
        return self.frames_per_patch * self.num_mel_bins


# The conformer's sizes were `encoder_*` until 2026-12-05; transformers reads `encoder_*` config keys as the mark of
# an encoder-decoder model (its tests skip left-padding checks for one), and this model is decoder-only.
RENAMED_CONFORMER_FIELDS = {
    f"encoder_{name}": f"conformer_{name}"
    for name in ("layers", "attention_heads", "ffn_dim", "conv_kernel_size", "bias_max_distance", "chunk_length")
}


def _drop_legacy_fields(kwargs: dict) -> dict:
    """Configs saved before the redesign carry training fields and removed experiments: drop the ones that change
    nothing at inference, and refuse a model whose inputs went through removed code."""
    for name, neutral in LEGACY_INFERENCE_FIELDS.items():
        value = kwargs.pop(name, neutral)
        if value != neutral:
            raise ValueError(
                f"This config sets {name}={value!r}, an option removed after commit 49b21fd (it did not help; "
                "docs/RESULTS.md). Load the model with mel-llm at that commit."
            )
    dropped = sorted(key for key in kwargs if key in LEGACY_TRAINING_FIELDS)
    if dropped:
        logger.warning_once(
            f"MelLLMConfig ignores {dropped}: training settings are not part of the model since commit 49b21fd; set "
            "them in the training arguments (training/arguments.py)."
        )
    return {key: value for key, value in kwargs.items() if key not in LEGACY_TRAINING_FIELDS}


__all__ = ["MelLLMConfig"]
