"""Phi-4-multimodal weight names → MelLLMForSpeechLM weight names, with every dropped key named and explained.

Two source layouts are read: transformers' `Phi4MultimodalForCausalLM` and the original remote-code checkpoint of
microsoft/Phi-4-multimodal-instruct (renamed to the first with the same renames as transformers' own conversion
script). Used by training/tools/convert_phi4mm.py, which checks shapes and writes the model.
"""

import re
from dataclasses import dataclass, field


AUDIO = r"model\.embed_tokens_extend\.audio_embed\."
ENCODER = AUDIO + r"encoder\."
LORA_MODULES = r"model\.layers\.\d+\.(?:self_attn\.(?:qkv|o)_proj|mlp\.(?:gate_up|down)_proj)"

# Original remote-code names → transformers names (the renames of transformers' convert_phi4_multimodal script).
ORIGINAL_RENAMES = [
    (rf"^({ENCODER}encoders\.\d+\.feed_forward_(?:in|out))\.net\.0\.linear\.", r"\1.gate_up_proj."),
    (rf"^({ENCODER}encoders\.\d+\.feed_forward_(?:in|out))\.net\.2\.", r"\1.down_proj."),
    (rf"^({ENCODER}encoders\.\d+\.self_attn)\.linear_(q|k|v)\.", r"\1.\2_proj."),
    (rf"^({ENCODER}encoders\.\d+\.self_attn)\.linear_out\.", r"\1.o_proj."),
    (rf"^({AUDIO})audio_projection\.speech\.0\.", r"\1up_proj_for_speech."),
    (rf"^({AUDIO})audio_projection\.speech\.2\.", r"\1down_proj_for_speech."),
    (rf"^({AUDIO})audio_projection\.vision\.0\.", r"\1up_proj_for_vision_speech."),
    (rf"^({AUDIO})audio_projection\.vision\.2\.", r"\1down_proj_for_vision_speech."),
]
ORIGINAL_LORA = re.compile(rf"^({LORA_MODULES})\.lora_(A|B)\.(speech|vision)\.weight$")
ORIGINAL_BASE_LAYER = re.compile(rf"^({LORA_MODULES})\.base_layer\.(weight|bias)$")
ADAPTER_LORA = re.compile(rf"^(?:base_model\.model\.)?({LORA_MODULES})\.lora_(A|B)(?:\.speech)?\.weight$")

# transformers-layout name → MelLLM name; `None` marks a key dropped on purpose (the reason is the third item).
LLM_RULES = [
    (r"model\.embed_tokens\.weight", r"language_model.model.embed_tokens.weight"),
    (r"model\.layers\.(\d+\.(?:input_layernorm|post_attention_layernorm)\.weight)", r"language_model.model.layers.\1"),
    (r"model\.layers\.(\d+\.self_attn\.(?:qkv|o)_proj\.weight)", r"language_model.model.layers.\1"),
    (r"model\.layers\.(\d+\.mlp\.(?:gate_up|down)_proj\.weight)", r"language_model.model.layers.\1"),
    (r"model\.norm\.weight", r"language_model.model.norm.weight"),
    (r"lm_head\.weight", r"language_model.lm_head.weight"),
]
AUDIO_RULES = [
    (ENCODER + r"encoder_embedding\.(global_mean|global_invstd)", r"audio_frontend.norm.\1"),
    (ENCODER + r"embed\.((?:conv\.\d+|out)\.(?:weight|bias))", r"audio_frontend.subsampling.\1"),
    (AUDIO + r"up_proj_for_speech\.(weight|bias)", r"multi_modal_projector.linear_1.\1"),
    (AUDIO + r"down_proj_for_speech\.(weight|bias)", r"multi_modal_projector.linear_2.\1"),
]
CONFORMER = ENCODER + r"((?:encoders\.\d+|relative_attention_bias_layer)\..+)"
DROPPED = [
    (r"model\.embed_tokens_extend\.image_embed\..+", "vision encoder and image projector"),
    (AUDIO + r"(?:up|down)_proj_for_vision_speech\..+", "speech projector used only when an image is present"),
]


@dataclass
class KeyMap:
    """Where each source key went: `mapped` (source → MelLLM), `dropped` (source → why), `speech_lora` (below)."""

    mapped: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    speech_lora: dict[str, str] = field(default_factory=dict)  # source → "model.layers.N.<module>.lora_{A,B}.weight"


def is_original_layout(keys) -> bool:
    """The remote-code checkpoint wraps LLM linears in PEFT (`base_layer`) and names the projector `audio_projection`."""
    return any(".base_layer." in k or ".audio_projection." in k or ".net.0.linear." in k for k in keys)


def original_to_transformers(key: str) -> str:
    """A remote-code key under its transformers name (PEFT's `base_layer.` removed from the LLM linears)."""
    for pattern, replacement in ORIGINAL_RENAMES:
        new_key, count = re.subn(pattern, replacement, key)
        if count:
            return new_key
    match = ORIGINAL_BASE_LAYER.match(key)
    return f"{match.group(1)}.{match.group(2)}" if match else key


def mel_llm_key(key: str, keep_encoder: bool) -> tuple[str | None, str | None]:
    """(MelLLM name, None) for a mapped transformers-layout key, (None, reason) for a dropped one; raises if unknown."""
    for pattern, replacement in LLM_RULES + AUDIO_RULES:
        if re.fullmatch(pattern, key):
            return re.sub("^" + pattern + "$", replacement, key), None
    if re.fullmatch(CONFORMER, key):
        if keep_encoder:
            return re.sub("^" + CONFORMER + "$", r"audio_frontend.encoder.\1", key), None
        return None, "conformer blocks (removed by the encoder-free front end; keep them with --frontend encoder)"
    for pattern, reason in DROPPED:
        if re.fullmatch(pattern, key):
            return None, reason
    raise KeyError(key)


def map_keys(keys, keep_encoder: bool) -> KeyMap:
    """Account for every source key: mapped, dropped with a reason, or speech LoRA; unknown keys raise."""
    keys = list(keys)
    original = is_original_layout(keys)
    key_map, unknown = KeyMap(), []
    for key in keys:
        lora = ORIGINAL_LORA.match(key) if original else None
        if lora:
            if lora.group(3) == "vision":
                key_map.dropped[key] = "vision LoRA"
            else:
                key_map.speech_lora[key] = f"{lora.group(1)}.lora_{lora.group(2)}.weight"
            continue
        name = original_to_transformers(key) if original else key
        try:
            target, reason = mel_llm_key(name, keep_encoder)
        except KeyError:
            unknown.append(key)
            continue
        if target is None:
            key_map.dropped[key] = reason
        else:
            key_map.mapped[key] = target
    if unknown:
        raise ValueError(
            f"{len(unknown)} Phi-4-MM keys are neither mapped nor intentionally dropped, e.g. {sorted(unknown)[:8]}. "
            "Is this a Phi-4-multimodal checkpoint (transformers or original layout)?"
        )
    return key_map


def adapter_lora(keys) -> dict[str, str]:
    """A speech-LoRA PEFT adapter's keys → "model.layers.N.<module>.lora_{A,B}.weight"; unknown keys raise."""
    renamed, unknown = {}, []
    for key in keys:
        match = ADAPTER_LORA.match(key)
        if match:
            renamed[key] = f"{match.group(1)}.lora_{match.group(2)}.weight"
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"Unexpected keys in the speech-LoRA adapter: {sorted(unknown)[:8]}.")
    return renamed


__all__ = ["KeyMap", "adapter_lora", "is_original_layout", "map_keys", "mel_llm_key", "original_to_transformers"]
