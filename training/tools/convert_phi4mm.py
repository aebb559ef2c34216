"""Phi-4-multimodal → MelLLMForSpeechLM: the paper's "Phi-4-MM init", written as a save_pretrained folder.

What goes where (names in training/tools/phi4mm_keys.py; every source key is mapped or dropped with a reason, unknown keys
and wrong shapes raise):
- LLM (Phi-4-mini) → `language_model`, a `Phi3ForCausalLM` (same fused `qkv_proj` / `gate_up_proj` weights).
- Global CMVN, NeMo conv subsampling → `audio_frontend.norm`, `audio_frontend.subsampling` (same module names).
- Conformer blocks → `audio_frontend.encoder` with `--frontend encoder`; dropped with `--frontend conv` (Mel-LLM).
- Speech projector Linear → GELU → Linear → `projector_type="mlp"`, exactly. One linear cannot hold it (GELU between),
  and with `--frontend conv` it only initialises a projector that was trained on conformer outputs.
- Speech LoRA (r=320, α=640): `--lora adapter` (default) writes it unmerged as a PEFT adapter in `OUT/speech-lora`,
  so the base LLM stays text-exact and the LoRA slot can be trained further as in the paper; `--lora merge` adds
  α/r·B·A into the weights; `--lora drop` leaves it out. Vision LoRA, vision encoder and the vision-speech
  projector are dropped.

Usage:
    python -m training.tools.convert_phi4mm --src microsoft/Phi-4-multimodal-instruct --out phi4mm-mel-llm --frontend conv
    # then: model = MelLLMForSpeechLM.from_pretrained(out); PeftModel.from_pretrained(model, f"{out}/speech-lora")
"""

import argparse
import json
from pathlib import Path

import torch
from peft import LoraConfig
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoTokenizer, GenerationConfig, Phi3Config

from modeling_mel_llm import MelLLMConfig, MelLLMForSpeechLM
from processing import MelLLMFeatureExtractor, MelLLMProcessor
from training.tools.phi4mm_keys import KeyMap, adapter_lora, map_keys


ORIGINAL_AUDIO_TOKEN_ID = 200011  # `<|endoftext11|>`, hard-coded in the remote code
_TEXT_KEYS = """
    vocab_size hidden_size intermediate_size num_hidden_layers num_attention_heads num_key_value_heads
    hidden_act max_position_embeddings original_max_position_embeddings rms_norm_eps tie_word_embeddings
    rope_parameters rope_scaling rope_theta partial_rotary_factor bos_token_id eos_token_id pad_token_id
    sliding_window resid_pdrop embd_pdrop attention_dropout initializer_range
"""
TEXT_KEYS = tuple(_TEXT_KEYS.split())  # the Phi-3 fields a Phi-4-mini config carries
SUPPORTED_AUDIO = {
    "input_size": 80,
    "downsample_rate": 1,
    "depthwise_multiplier": 1,
    "bias_symmetric": False,
    "activation": "swish",
    "conv_activation": "swish",
    "conv_glu_type": "swish",
    "nemo_activation": "relu",
}
DEFAULT_SPEECH_LORA = {"r": 320, "lora_alpha": 640, "lora_dropout": 0.01}
MEL_LLM_LORA_TARGETS = r"language_model\.model\.layers\.\d+\.((self_attn\.(qkv|o)_proj)|(mlp\.(gate_up|down)_proj))"
LORA_MODES = ("adapter", "merge", "drop")


# ---------------------------------------------------------------------------------------------------- config
def text_config(raw: dict) -> Phi3Config:
    """Phi-4-mini as a Phi-3 config (both layouts keep the LLM fields at the top level of config.json)."""
    return Phi3Config(**{key: raw[key] for key in TEXT_KEYS if raw.get(key) is not None})


def audio_fields(raw: dict) -> dict:
    """The Phi-4-MM audio settings a MelLLMConfig needs, from either layout; unsupported variants raise."""
    if "audio_config" in raw:  # transformers layout
        audio = raw["audio_config"]
        fields = {
            "hidden": audio["hidden_size"],
            "heads": audio["num_attention_heads"],
            "ffn": audio["intermediate_size"],
            "blocks": audio["num_blocks"],
            "channels": audio["nemo_conv_channels"],
            "distance": audio["bias_max_distance"],
            "token": audio.get("audio_token_id", ORIGINAL_AUDIO_TOKEN_ID),
        }
    else:  # original remote-code layout
        audio = raw["audio_processor"]["config"]
        audio = {**audio, **raw.get("embd_layer", {}).get("audio_embd_layer", {})}
        fields = {
            "hidden": audio["attention_dim"],
            "heads": audio["attention_heads"],
            "ffn": audio["linear_units"],
            "blocks": audio["num_blocks"],
            "channels": audio["nemo_conv_settings"]["conv_channels"],
            "distance": audio["relative_attention_bias_args"]["t5_bias_max_distance"],
            "token": raw.get("audio_token_id", ORIGINAL_AUDIO_TOKEN_ID),
        }
    for name, value in SUPPORTED_AUDIO.items():  # what transformers' conformer classes (and so MelLLM) implement
        if audio.get(name, value) != value:
            raise ValueError(f"Phi-4-MM audio setting {name}={audio[name]!r} is not supported (expected {value!r}).")
    for name in ("ext_pw_out_channel", "depthwise_separable_out_channel", "depthwise_seperable_out_channel"):
        if audio.get(name, fields["hidden"]) != fields["hidden"]:
            raise ValueError(f"Phi-4-MM audio setting {name}={audio[name]} must equal the conformer width.")
    return {
        **fields,
        "kernel": audio.get("kernel_size", 3),
        "reduction": audio.get("time_reduction", 8),
        "chunk_size": audio.get("chunk_size", -1),
    }


def mel_llm_config(raw: dict, frontend: str) -> MelLLMConfig:
    audio = audio_fields(raw)
    if frontend == "encoder" and audio["chunk_size"] > 0:
        raise ValueError(
            f"The checkpoint's conformer uses streaming chunks (chunk_size={audio['chunk_size']}); MelLLM's encoder "
            "front end attends over the whole clip, so convert with --frontend conv."
        )
    return MelLLMConfig(
        text_config=text_config(raw),
        num_mel_bins=80,
        frontend=frontend,
        frames_per_patch=audio["reduction"],
        conv_channels=audio["channels"],
        conv_output_size=audio["hidden"],
        conformer_layers=audio["blocks"],
        conformer_attention_heads=audio["heads"],
        conformer_ffn_dim=audio["ffn"],
        conformer_conv_kernel_size=audio["kernel"],
        conformer_bias_max_distance=audio["distance"],
        audio_token_id=audio["token"],
        projector_type="mlp",
    )


# ---------------------------------------------------------------------------------------------------- weights
def read_safetensors(files: list[Path]) -> dict[str, torch.Tensor]:
    tensors = {}
    for file in files:
        with safe_open(file, "pt") as f:
            tensors.update({key: f.get_tensor(key) for key in f.keys()})  # noqa: SIM118 (safe_open has no iterator)
    return tensors


def mapped_state_dict(source: dict[str, torch.Tensor], key_map: KeyMap, config: MelLLMConfig) -> dict:
    """Rename, then check the names and shapes against a MelLLM built on the meta device."""
    with torch.device("meta"):
        expected = {k: v.shape for k, v in MelLLMForSpeechLM(config).state_dict().items()}
    if config.text_config.tie_word_embeddings:
        expected.pop("language_model.lm_head.weight")
    state_dict = {}
    for key, target in key_map.mapped.items():
        if target in state_dict:
            raise ValueError(f"Two Phi-4-MM keys map to {target} (the second is {key}).")
        if target not in expected:  # e.g. an lm_head in a tied checkpoint
            if target == "language_model.lm_head.weight":
                embed = source["model.embed_tokens.weight"]
                if not torch.equal(source[key], embed):
                    raise ValueError(f"{key} differs from the embeddings but tie_word_embeddings is set.")
                continue
            raise ValueError(f"{key} → {target}, which MelLLMForSpeechLM does not have.")
        if source[key].shape != expected[target]:
            raise ValueError(f"{key}: shape {tuple(source[key].shape)}, but {target} needs {tuple(expected[target])}.")
        state_dict[target] = source[key]
    missing = sorted(set(expected) - set(state_dict))
    if missing:
        raise ValueError(f"{len(missing)} MelLLM weights have no Phi-4-MM source, e.g. {missing[:8]}.")
    return state_dict


def speech_lora(source: dict, key_map: KeyMap, folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The speech LoRA as {"model.layers.N.<module>.lora_{A,B}.weight": tensor} plus its r/α/dropout."""
    settings = dict(DEFAULT_SPEECH_LORA)
    if key_map.speech_lora:  # original layout: inside the main shards
        raw = json.loads((folder / "config.json").read_text()).get("speech_lora") or {}
        settings.update({k: raw[k] for k in ("r", "lora_alpha") if k in raw}, lora_dropout=raw.get("dp", 0.01))
        return {name: source[key] for key, name in key_map.speech_lora.items()}, settings
    adapter_dir = folder / "speech-lora"
    if not (adapter_dir / "adapter_model.safetensors").exists():
        return {}, settings
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text())
    settings.update({k: adapter_config[k] for k in settings if k in adapter_config})
    tensors = read_safetensors([adapter_dir / "adapter_model.safetensors"])
    names = adapter_lora(tensors)
    key_map.speech_lora.update({f"speech-lora/{key}": name for key, name in names.items()})
    return {name: tensors[key] for key, name in names.items()}, settings


def check_lora(lora: dict[str, torch.Tensor], state_dict: dict, rank: int) -> None:
    for name, tensor in lora.items():
        base = "language_model." + name.replace(".lora_A.weight", ".weight").replace(".lora_B.weight", ".weight")
        out_features, in_features = state_dict[base].shape
        want = (rank, in_features) if ".lora_A." in name else (out_features, rank)
        if tuple(tensor.shape) != want:
            raise ValueError(f"speech LoRA {name}: shape {tuple(tensor.shape)}, expected {want} (r={rank}).")
        if name.replace(".lora_A.", ".lora_B.") not in lora or name.replace(".lora_B.", ".lora_A.") not in lora:
            raise ValueError(f"speech LoRA {name} has no matching lora_A/lora_B partner.")


def merge_lora(state_dict: dict, lora: dict[str, torch.Tensor], scale: float) -> None:
    """W ← W + α/r·B·A, computed in float32."""
    for name, a in lora.items():
        if ".lora_A." not in name:
            continue
        b = lora[name.replace(".lora_A.", ".lora_B.")]
        base = "language_model." + name.replace(".lora_A.weight", ".weight")
        weight = state_dict[base]
        state_dict[base] = (weight.float() + scale * (b.float() @ a.float())).to(weight.dtype)


def save_adapter(lora: dict[str, torch.Tensor], settings: dict, out: Path) -> None:
    """The speech LoRA as a PEFT adapter of MelLLMForSpeechLM: `PeftModel.from_pretrained(model, out/'speech-lora')`."""
    folder = out / "speech-lora"
    config = LoraConfig(**settings, target_modules=MEL_LLM_LORA_TARGETS)
    config.save_pretrained(folder)
    tensors = {f"base_model.model.language_model.{name}": t.contiguous() for name, t in lora.items()}
    save_file(tensors, folder / "adapter_model.safetensors", metadata={"format": "pt"})


# ---------------------------------------------------------------------------------------------------- entry points
def resolve_source(src: str) -> Path:
    """A local folder as is; otherwise a Hub repo id, downloaded without the vision LoRA."""
    if Path(src).is_dir():
        return Path(src)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(src, ignore_patterns=["vision-lora/*", "*.bin", "*.pt", "*.png", "*.jpg", "*.wav"]))


def convert(src: str, out: str | Path, frontend: str = "conv", lora: str = "adapter") -> KeyMap:
    """Convert `src` (folder or repo id) into a MelLLM folder at `out`; returns where every source key went."""
    if frontend not in ("conv", "encoder"):
        raise ValueError(f"frontend={frontend!r}: Phi-4-MM converts to 'conv' (encoder-free) or 'encoder'.")
    if lora not in LORA_MODES:
        raise ValueError(f"lora={lora!r}; choose one of {LORA_MODES}.")
    folder, out = resolve_source(src), Path(out)
    raw = json.loads((folder / "config.json").read_text())
    config = mel_llm_config(raw, frontend)
    source = read_safetensors(sorted(folder.glob("*.safetensors")))
    key_map = map_keys(source, keep_encoder=frontend == "encoder")
    state_dict = mapped_state_dict(source, key_map, config)
    lora_tensors, settings = speech_lora(source, key_map, folder)
    check_lora(lora_tensors, state_dict, settings["r"])
    if lora == "merge":
        merge_lora(state_dict, lora_tensors, settings["lora_alpha"] / settings["r"])
    dtype = state_dict["language_model.model.embed_tokens.weight"].dtype
    model = MelLLMForSpeechLM.from_pretrained(None, config=config, state_dict=state_dict, dtype=dtype)
    if (folder / "generation_config.json").exists():
        model.generation_config = GenerationConfig.from_pretrained(folder)
    model.generation_config.max_new_tokens = model.generation_config.max_new_tokens or 512
    model.save_pretrained(out)
    if lora == "adapter" and lora_tensors:
        save_adapter(lora_tensors, settings, out)
    build_processor(folder, config).save_pretrained(out)
    return key_map


def build_processor(folder: Path, config: MelLLMConfig) -> MelLLMProcessor:
    """Phi-4-MM's tokenizer with its own audio token (`<|endoftext11|>`) as the placeholder."""
    # The converted text config stands in for config.json, whose remote-code model_type ("phi4mm") Auto cannot read.
    tokenizer = AutoTokenizer.from_pretrained(folder, config=config.text_config)
    audio_token = tokenizer.convert_ids_to_tokens(config.audio_token_id)
    feature_extractor = MelLLMFeatureExtractor(frames_per_patch=config.frames_per_patch)
    processor = MelLLMProcessor.from_text_tokenizer(tokenizer, feature_extractor, audio_token=audio_token)
    if processor.audio_token_id != config.audio_token_id or len(processor.tokenizer) > config.vocab_size:
        raise ValueError(
            f"The tokenizer's audio token {audio_token!r} has id {processor.audio_token_id} (the model expects "
            f"{config.audio_token_id}) or it outgrew the {config.vocab_size} embeddings ({len(processor.tokenizer)})."
        )
    return processor


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", required=True, help="Phi-4-multimodal folder or Hub repo id")
    parser.add_argument("--out", required=True, help="output folder for the MelLLM model and processor")
    parser.add_argument("--frontend", default="conv", choices=["conv", "encoder"])
    parser.add_argument("--lora", default="adapter", choices=list(LORA_MODES), help="speech LoRA handling")
    args = parser.parse_args(argv)
    key_map = convert(args.src, args.out, frontend=args.frontend, lora=args.lora)
    reasons = sorted(set(key_map.dropped.values()))
    print(
        f"mapped {len(key_map.mapped)}, speech LoRA {len(key_map.speech_lora)}, dropped {len(key_map.dropped)} tensors"
    )
    for reason in reasons:
        print(f"  dropped {sum(r == reason for r in key_map.dropped.values())}: {reason}")
    print(f"wrote {args.out} (frontend={args.frontend}, speech LoRA: {args.lora})")


if __name__ == "__main__":
    main()


__all__ = ["convert", "main", "mel_llm_config"]
