"""Run configuration: model/data argument dataclasses and `parse_config` (one YAML + typed `--key=value` overrides).

    python -m training.train training/configs/tiny_cpu.yaml --learning_rate=1e-3 --max_steps=200

Keys go to `ModelArguments`, `DataArguments` or `transformers.TrainingArguments` by name; an unknown key or a value
that does not fit the field's type raises, naming the key (nanoGPT's configurator, on HF dataclasses).
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainingArguments

from modeling_mel_llm import MelLossWeights
from modeling_mel_llm.discrete_latent import LatentLossWeights, LatentTraining
from training.corpus.defaults import (
    DEFAULT_NUM_EVAL,
    DEFAULT_NUM_TRAIN,
    PSEUDO_ACCENT_SHARE,
    PSEUDO_ACCENT_VOICES,
    AccentRules,
)


# Attention and MLP projections of Llama/Qwen2 (q/k/v/o, gate/up/down) and Phi-3/Phi-4 (fused qkv, gate_up).
LORA_TARGETS = [
    "q_proj",
    "k_proj",
    "v_proj",
    "qkv_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "gate_up_proj",
    "down_proj",
]


@dataclass
class ModelArguments:
    """What to build: the backbone, the audio front end, and which weights train."""

    text_model: str | None = field(
        default=None, metadata={"help": "Hub id or path of a causal LM; None builds a tiny LM from scratch"}
    )
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file inside text_model (e.g. SmolLM2)"})
    init_from: str | None = field(
        default=None, metadata={"help": "a trained Mel-LLM folder to start from (the 'multimodal checkpoint' init)"}
    )
    tiny_family: str = field(default="llama", metadata={"help": "from-scratch backbone family"})
    tiny_hidden_size: int = 128
    tiny_num_layers: int = 4
    tiny_num_heads: int = 4
    tiny_vocab_size: int = 1000  # BPE trained on the transcripts: ~1 token per word on the synthetic corpus
    frontend: str = field(default="stack", metadata={"help": "stack | conv | encoder (conv + conformer baseline)"})
    frames_per_patch: int = 8
    # Audio-path sizes; None keeps MelLLMConfig's default (Phi-4-MM's sizes), or tiny.py's for a from-scratch LM.
    conv_channels: int | None = field(default=None, metadata={"help": "channels of the strided convolutions"})
    conv_output_size: int | None = field(default=None, metadata={"help": "width after the convolutions"})
    conformer_layers: int | None = field(default=None, metadata={"help": "conformer blocks (frontend=encoder)"})
    conformer_attention_heads: int | None = None
    conformer_ffn_dim: int | None = None
    finetune: str = field(default="full", metadata={"help": "full | lora | frontend (LLM frozen)"})
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.01
    lora_target_modules: list[str] = field(
        default_factory=lambda: list(LORA_TARGETS), metadata={"help": "LLM linear layer names that get LoRA"}
    )
    train_layers: list[int] | None = field(
        default=None,
        metadata={"help": "LLM layer indices that train (LoRA layers_to_transform, or unfrozen layers); None = all"},
    )
    attn_implementation: str = "sdpa"
    tts_head: bool = field(default=False, metadata={"help": "add the MELLE-style mel head so the model also speaks"})
    tts_config: dict | None = field(
        default=None,
        metadata={"help": "other MelLLMConfig tts_* fields, e.g. {tts_mlp_size: 512, tts_postnet_channels: 128}"},
    )
    tts_loss_weight: float = field(default=1.0, metadata={"help": "weight of the TTS loss next to the text loss"})
    tts_kl_weight: float = field(default=0.1, metadata={"help": "weight of the mel head's KL term (MELLE: 0.1)"})
    tts_stop_weight: float = field(default=1.0, metadata={"help": "weight of the stop BCE"})
    tts_stop_pos_weight: float = field(default=20.0, metadata={"help": "BCE pos_weight of the one stop step"})
    tts_scheduled_sampling: float = field(
        default=0.0,
        metadata={
            "help": "share of fed-back TTS patches replaced by the model's own predictions from a gradient-free "
            "teacher-forced pass (parallel scheduled sampling; training/scheduled_sampling.py); 0 = off"
        },
    )
    tts_interleave_words: bool | None = field(
        default=None,
        metadata={
            "help": "TTS rows with each word's tokens right before its speech (MelLLMProcessor.tts_interleave_words; "
            "needs word start times, which the synthetic corpus records); a new processor defaults to false, "
            "--init_from keeps the saved one"
        },
    )

    tts_text_units: str | None = field(
        default=None,
        metadata={
            "help": "what a TTS model reads (MelLLMProcessor.tts_text_units): 'tokens' (the default for a new "
            "processor) or 'phonemes' (espeak-ng's pronunciation of each word, so unseen words are spoken as "
            "written); --init_from keeps the saved one"
        },
    )

    latent_config: dict | None = field(
        default=None,
        metadata={
            "help": "MELD's discrete latents (MelLLMConfig fields), e.g. {speech_latent: discrete, latent_codes: 256, "
            "latent_groups: 8, asr_input: latent}; None = the paper's continuous path"
        },
    )
    latent_training: str = field(
        default="joint",
        metadata={
            "help": "joint (encoder and LM trained together) | two_stage (first latent_stage1_fraction of the steps: "
            "encoder + decoder alone as a discrete autoencoder with a unigram prior; then frozen, the LM learns "
            "on their codes)"
        },
    )
    latent_stage1_fraction: float = field(default=0.3, metadata={"help": "two_stage: share of max_steps in stage 1"})
    latent_estimator: str = field(
        default="marginal", metadata={"help": "E_q of the discrete TTS loss: marginal (exact sum) | gumbel"}
    )
    latent_temperature: list[float] = field(
        default_factory=lambda: [1.0, 1.0],
        metadata={"help": "[start, end] Gumbel-softmax temperature, annealed geometrically over the run"},
    )
    latent_prior_weight: float = field(default=1.0, metadata={"help": "weight of E_q[-log prior(z)]"})
    latent_entropy_weight: float = field(default=1.0, metadata={"help": "weight of the posterior entropy H(q)"})
    latent_reconstruction_weight: float = field(default=1.0, metadata={"help": "weight of E_q[-log p(x|z)]"})
    latent_usage_weight: float = field(
        default=1.0,
        metadata={"help": "weight of the entropy of the batch's average posterior (keeps codes from collapsing)"},
    )

    unified_config: dict | None = field(
        default=None,
        metadata={
            "help": "frontend=unified (TESU): MelLLMConfig fields, e.g. {units: chars, shared_space: posterior, "
            "blank_threshold: 0.9, unified_encoder_size: 192, unified_encoder_layers: 4}"
        },
    )
    tesu_stage: str = field(
        default="both",
        metadata={
            "help": "frontend=unified: both (encoder CTC on paired audio, then the text-only stage) | encoder | "
            "text_only (needs init_from a model whose encoder is trained)"
        },
    )
    tesu_encoder_steps: int = field(
        default=0, metadata={"help": "optimizer steps of the encoder stage; the text-only stage gets the rest"}
    )
    tesu_encoder_learning_rate: float | None = field(
        default=None, metadata={"help": "the encoder stage's learning rate (default: learning_rate)"}
    )

    label_logits_only: bool = field(
        default=True,
        metadata={
            "help": "in training, apply the LM head only where a text token is a target (the same loss and "
            "gradients; a tenth less forward and backward time on the tiny models; training outputs carry no logits)"
        },
    )

    def loss_weights(self) -> MelLossWeights:
        """How the model weighs its TTS loss in this run (checked on construction, with the field named)."""
        return MelLossWeights(self.tts_loss_weight, self.tts_kl_weight, self.tts_stop_weight, self.tts_stop_pos_weight)

    def latent_objective(self) -> LatentTraining:
        """The discrete path's training choices at the start of the run (the temperature then anneals)."""
        if self.latent_training not in ("joint", "two_stage"):
            raise ValueError(f"latent_training={self.latent_training!r}; choose joint or two_stage.")
        if not 0 < self.latent_stage1_fraction < 1:
            raise ValueError(f"latent_stage1_fraction must be within (0, 1), got {self.latent_stage1_fraction}.")
        if len(self.latent_temperature) != 2:
            raise ValueError(f"latent_temperature must be [start, end], got {self.latent_temperature}.")
        weights = LatentLossWeights(
            self.latent_prior_weight,
            self.latent_entropy_weight,
            self.latent_reconstruction_weight,
            self.tts_stop_weight,
            self.tts_stop_pos_weight,
            self.latent_usage_weight,
        )
        return LatentTraining(weights, self.latent_estimator, self.latent_temperature[0])


@dataclass
class DataArguments:
    """Where speech comes from and how it is augmented."""

    corpus: str = field(default="synthetic", metadata={"help": "synthetic | fsdd | manifest | hub"})
    train_manifest: str | None = None
    eval_manifest: str | None = None
    dataset_name: str | None = None
    dataset_config: str | None = None
    dataset_data_files: dict[str, str] | None = field(
        default=None,
        metadata={"help": "split → files, for builders like parquet: {train: a.parquet, test: b.parquet}"},
    )
    train_split: str = "train"
    eval_split: str | None = "test"
    audio_column: str = "audio"
    text_column: str = "text"
    streaming: bool = False
    synthetic_text: str = field(
        default="templates",
        metadata={
            "help": "what the synthetic corpus says: 'open' (everyday English over thousands of words, with a "
            "held-out set of unseen words) or 'templates' (the few-hundred-word template language)"
        },
    )
    synthetic_num_train: int = DEFAULT_NUM_TRAIN
    synthetic_num_eval: int = DEFAULT_NUM_EVAL
    synthetic_pseudo_accent_share: float = field(
        default=PSEUDO_ACCENT_SHARE,
        metadata={
            "help": "share of synthetic training utterances in a made-up accent (training.corpus.pseudo_accents)"
        },
    )
    synthetic_pseudo_accents: int = field(
        default=PSEUDO_ACCENT_VOICES, metadata={"help": "how many made-up accents (1-200) the synthetic corpus has"}
    )
    synthetic_pseudo_accent_vowel_swaps: list[int] = field(
        default_factory=lambda: list(AccentRules.vowel_swaps),
        metadata={"help": "[min, max] random vowel swaps per made-up accent"},
    )
    synthetic_voice: str | None = field(
        default=None,
        metadata={
            "help": "one espeak-ng voice (e.g. en-us) at one rate and pitch for both splits, or 'piper' (the "
            "neural Piper voice, voices extra): a single-speaker corpus for TTS; None = the many-voice corpus"
        },
    )
    synthetic_voices: str = field(
        default="espeak",
        metadata={
            "help": "who speaks the many-voice corpus: 'espeak', or a mix such as 'espeak,piper,kokoro' (equal "
            "shares) or 'espeak:0.75,piper:0.1,kokoro:0.15'; neural voices need the voices extra and add held-out "
            "splits of speakers training never has (training/corpus/voice_mix.py)"
        },
    )
    fsdd_dir: str | None = field(
        default=None,
        metadata={
            "help": "FSDD folder: a clone of the upstream repository (recordings/*.wav) or a folder with a "
            "manifest.jsonl; default $MEL_LLM_FSDD_DIR"
        },
    )
    fsdd_test_speaker: str | None = field(
        default=None, metadata={"help": "FSDD leave-one-speaker-out: train on the others, test on this one"}
    )
    train_fraction: float = field(
        default=1.0, metadata={"help": "train on a seeded random share of the training utterances (scarce-data runs)"}
    )
    extra_train_manifests: list[str] | None = field(
        default=None,
        metadata={"help": "JSONL manifests whose utterances join the training set (not the held-out sets)"},
    )
    extra_eval_manifests: list[str] | None = field(
        default=None,
        metadata={"help": "more held-out JSONL manifests (corpus=manifest), each scored as a set named by its stem"},
    )
    max_duration_s: float = 30.0
    eval_max_samples: int | None = field(
        default=200, metadata={"help": "utterances per held-out set for the final WER; None = all, 0 = no WER"}
    )
    eval_max_new_tokens: int = field(default=128, metadata={"help": "generation cap when transcribing held-out sets"})
    eval_num_beams: int = field(default=1, metadata={"help": "beam width when transcribing held-out sets; 1 = greedy"})
    speed_perturb: list[float] | None = field(default=None, metadata={"help": "e.g. [0.9, 1.0, 1.1]"})
    gain_db: float = 0.0
    noise_snr_db: float | None = None
    spec_time_masks: int = 0
    spec_time_mask_frames: int = 20
    spec_freq_masks: int = 0
    spec_freq_mask_bins: int = 10
    augment_probability: float = field(default=0.5, metadata={"help": "share of examples each waveform aug touches"})
    word_crop_probability: float = field(
        default=0.0,
        metadata={
            "help": "share of training examples cut to a random run of their words (training.augment.crop_to_words; "
            "needs the word times the synthetic corpus records)"
        },
    )
    word_crop_max_words: int = field(default=6, metadata={"help": "longest run of words a crop keeps"})
    record_sample_ids: bool = field(default=False, metadata={"help": "write the example ids each rank trains on"})
    tts_ratio: float = field(
        default=0.0, metadata={"help": "share of training examples turned into TTS (text → mel); needs tts_head"}
    )
    pack_sequences: bool = field(
        default=False,
        metadata={"help": "pack each ASR batch into padding-free rows (same loss, fewer tokens); not with TTS"},
    )

    tesu_text: str = field(
        default="digits",
        metadata={
            "help": "TESU's text-only rows: digits (1-3 digit words) | open (the open corpus's sentences) | a text "
            "file, one sentence per line"
        },
    )
    tesu_text_examples: int = field(default=20_000, metadata={"help": "generated text rows of the text-only stage"})
    tesu_arithmetic_share: float = field(
        default=0.3, metadata={"help": "share of text rows that are digit sums ('three five' → 'eight')"}
    )
    text_smoothing_max: float = field(default=0.1, metadata={"help": "text-path one-hots smoothed by U(0, this)"})
    text_drop_rate: float = field(default=0.05, metadata={"help": "share of text-path units dropped"})
    text_repeat_rate: float = field(default=0.02, metadata={"help": "share of text-path units repeated"})

    def pseudo_accent_rules(self) -> AccentRules:
        """How the synthetic corpus draws its made-up accents (checked on use, with an error naming the range)."""
        return AccentRules(tuple(self.synthetic_pseudo_accent_vowel_swaps))


ALL_ARGUMENTS = (ModelArguments, DataArguments, TrainingArguments)


def _field_types() -> dict[str, typing.Any]:
    types_by_name = {}
    for cls in ALL_ARGUMENTS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                types_by_name[f.name] = hints.get(f.name, str)
    return types_by_name


def _convert(key: str, text: str, annotation) -> typing.Any:
    """Parse an override string to the field's type: null, bools, numbers and lists via YAML; strings verbatim
    (so `--save_strategy=no` stays "no", not YAML's False)."""
    if text.strip() in ("null", "~", "None"):  # lower-case "none" is a real value (report_to=none)
        return None
    members = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [m for m in members if m is not type(None)]
        annotation = members[0] if len(members) == 1 else annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    try:
        if annotation is bool:
            value = yaml.safe_load(text)
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if annotation in (int, float):
            return annotation(text)
        if origin is list:
            value = yaml.safe_load(text)
            items = value if isinstance(value, list) else [value]
            return [args[0](v) for v in items] if args and args[0] in (int, float, str) else items
        if origin is dict or annotation is dict:
            return yaml.safe_load(text)
        return text
    except (TypeError, ValueError, yaml.YAMLError) as error:
        raise ValueError(f"--{key}={text!r} does not fit the field's type {annotation}: {error}") from error


def _config_flag_as_path(argv: list[str]) -> list[str]:
    """`--config FILE` / `--config=FILE` is the same as a bare FILE."""
    result, iterator = [], iter(argv)
    for arg in iterator:
        if arg == "--config":
            path = next(iterator, None)
            if path is None:
                raise ValueError("--config needs a YAML file: --config training/configs/tiny_cpu.yaml.")
            result.append(path)
        elif arg.startswith("--config="):
            result.append(arg.partition("=")[2])
        else:
            result.append(arg)
    return result


def _is_bool(annotation) -> bool:
    """`bool` or `bool | None`: a field a bare `--flag` sets to true."""
    members = [m for m in typing.get_args(annotation) if m is not type(None)]
    return annotation is bool or members == [bool]


def _join_spaced_values(argv: list[str], field_types: dict[str, typing.Any]) -> list[str]:
    """`--key value` → `--key=value`, as HfArgumentParser and every HF example accept; a bare boolean flag (`--bf16`)
    stays a flag when the next word is another flag, a YAML file, or absent."""
    joined, index = [], 0
    while index < len(argv):
        arg = argv[index]
        key = arg[2:].replace("-", "_")
        following = argv[index + 1] if index + 1 < len(argv) else None
        takes_next = (
            arg.startswith("--")
            and "=" not in arg
            and key in field_types
            and following is not None
            and not following.startswith("--")
            and (not _is_bool(field_types[key]) or following.lower() in ("true", "false"))
        )
        joined.append(f"{arg}={following}" if takes_next else arg)
        index += 2 if takes_next else 1
    return joined


def parse_config(argv: list[str]) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """`[config.yaml | --config config.yaml] [--key=value ...]` → the three argument dataclasses (later wins)."""
    values: dict[str, typing.Any] = {}
    field_types = _field_types()
    argv = _config_flag_as_path(argv)
    for arg in _join_spaced_values(argv, field_types):
        if not arg.startswith("--"):
            loaded = yaml.safe_load(Path(arg).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{arg} must hold a mapping of argument names to values.")
            values.update(loaded)
            continue
        key, sep, text = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key not in field_types:
            raise ValueError(f"Unknown argument --{key}; see ModelArguments, DataArguments and TrainingArguments.")
        if not sep:
            if not _is_bool(field_types[key]):
                raise ValueError(f"--{key} needs a value: --{key} VALUE or --{key}=VALUE.")
            text = "true"
        values[key] = _convert(key, text, field_types[key])
    unknown = sorted(set(values) - set(field_types))
    if unknown:
        raise ValueError(f"Unknown argument(s) in the config: {unknown}.")
    values.setdefault("output_dir", "runs/mel_llm")
    return HfArgumentParser(ALL_ARGUMENTS).parse_dict(values)


__all__ = ["LORA_TARGETS", "DataArguments", "ModelArguments", "parse_config"]
