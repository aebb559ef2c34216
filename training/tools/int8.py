"""CPU int8 for a Mel-LLM: the backbone's linear layers hold int8 weights and quantize their inputs per token
(torchao's `Int8DynamicActivationInt8WeightConfig` through transformers' `TorchAoConfig`, the `int8` extra).

Load any checkpoint as int8 (the audio path and the token embeddings stay float; a tied LM head too):

    model = MelLLMForSpeechLM.from_pretrained(path, quantization_config=int8_config())

Write an int8 checkpoint (safetensors) that a plain `from_pretrained` loads as int8, LM head included:

    python -m training.tools.int8 runs/tiny_cpu runs/tiny_cpu_int8

Decoding is fastest compiled with a static cache (`model.forward = torch.compile(model.forward, dynamic=True)`,
`generate(..., cache_implementation="static")`): eager int8 pays a quantize step per layer in Python, which on small
models costs more than the smaller weights save (docs/RESULTS.md, section 16).
"""

import argparse
import tempfile
from pathlib import Path

import torch
from transformers import TorchAoConfig

from modeling_mel_llm import MelLLMForSpeechLM
from processing import MelLLMProcessor


# Kept in float: the audio path (few weights, and its input is the signal itself) and the token embedding table
# (a lookup reads one row a token, so int8 would save memory but no time). transformers matches these against
# parameter names from the start, as prefixes or regular expressions.
FLOAT_MODULES = ["audio_frontend", "multi_modal_projector", "unified_frontend", "mel_head", "speech_latent"]
FLOAT_MODULES += [r".*\.(embed_tokens|embed_in|wte|word_embeddings)"]


def int8_config() -> TorchAoConfig:
    """The `quantization_config` that makes `from_pretrained` load the backbone's linear layers as int8."""
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig
    except ImportError as error:
        raise ImportError('int8 needs torchao: pip install -e ".[int8]" -c constraints.txt') from error
    return TorchAoConfig(
        Int8DynamicActivationInt8WeightConfig(),
        modules_to_not_convert=list(FLOAT_MODULES),
        include_input_output_embeddings=True,  # the LM head, when untied; FLOAT_MODULES keeps the input side float
    )


def untie_output_embeddings(model: MelLLMForSpeechLM) -> bool:
    """Give the LM head its own copy of a tied embedding matrix, so it can be quantized alone (transformers' own
    `untie_embedding_weights` only finds a top-level `lm_head`). Returns whether anything was tied."""
    head, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
    if head is None or head.weight is not embeddings.weight:
        return False
    head.weight = torch.nn.Parameter(embeddings.weight.detach().clone())
    model.config.text_config.tie_word_embeddings = False
    model.language_model.config.tie_word_embeddings = False
    return True


def quantize_int8(model: MelLLMForSpeechLM) -> MelLLMForSpeechLM:
    """An int8 copy of a float model, loaded the way users load one (`int8_config`), its LM head untied first so it is
    int8 too. Unties `model` itself (a lookup table and a head with the same values: its outputs do not change)."""
    untie_output_embeddings(model)
    with tempfile.TemporaryDirectory() as untied:
        model.save_pretrained(untied)
        return MelLLMForSpeechLM.from_pretrained(untied, quantization_config=int8_config())


def write_int8_checkpoint(source: str | Path, destination: str | Path) -> MelLLMForSpeechLM:
    """Save `source`'s model with an untied int8 LM head and int8 backbone layers (plus its processor files) to
    `destination`; return the int8 model."""
    quantized = quantize_int8(MelLLMForSpeechLM.from_pretrained(source))
    quantized.save_pretrained(destination)
    MelLLMProcessor.from_pretrained(source).save_pretrained(destination)
    return quantized


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a save_pretrained folder")
    parser.add_argument("destination", help="where the int8 checkpoint goes")
    args = parser.parse_args(argv)
    model = write_int8_checkpoint(args.source, args.destination)
    size = sum(p.stat().st_size for p in Path(args.destination).glob("*.safetensors")) / 2**20
    print(f"int8 checkpoint in {args.destination} ({size:.1f} MiB of weights, {model.num_parameters():,} parameters)")


if __name__ == "__main__":
    main()
