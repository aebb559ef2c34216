"""CPU int8 (issue 19): the backbone's linear layers load as int8 through transformers' `TorchAoConfig`, an int8
checkpoint loads as int8 with a plain `from_pretrained`, and compiled static-cache decoding matches eager."""

import json

import pytest
import torch
from torchao.quantization import Int8Tensor
from transformers import AutoModelForSpeechSeq2Seq, pipeline

from modeling_mel_llm import MelLLMForSpeechLM
from tests.conftest import FSDD_DIR, load_fsdd_clip, transcribe
from training.evaluation.eval_asr import main as eval_asr_main
from training.tools.int8 import int8_config, untie_output_embeddings, write_int8_checkpoint


def _int8_linears(model: MelLLMForSpeechLM) -> dict[str, bool]:
    """Per linear layer of the model: whether its weight is torchao's int8 tensor."""
    return {
        name: isinstance(module.weight, Int8Tensor)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, overfit_models, processor):
    model, _ = overfit_models("llama", "stack")
    folder = tmp_path_factory.mktemp("fp32")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_int8_loading_quantizes_the_backbone_and_keeps_the_transcripts(saved_model, processor, fsdd_batch):
    clips, texts = fsdd_batch
    model = MelLLMForSpeechLM.from_pretrained(saved_model, quantization_config=int8_config())
    linears = _int8_linears(model)
    backbone = {name: is_int8 for name, is_int8 in linears.items() if name.startswith("language_model.")}
    assert "language_model.lm_head" in backbone  # the tiny model's head is its own matrix, so it is int8 too
    assert all(backbone.values())
    assert not any(is_int8 for name, is_int8 in linears.items() if not name.startswith("language_model."))
    assert not isinstance(model.get_input_embeddings().weight, Int8Tensor)
    assert transcribe(model, processor, clips) == texts


def test_a_tied_head_stays_float_and_tied(make_model, tmp_path):
    """transformers can only untie a top-level `lm_head`; a tied head loads float (write_int8_checkpoint unties)."""
    make_model(tie_word_embeddings=True).save_pretrained(tmp_path)
    model = MelLLMForSpeechLM.from_pretrained(tmp_path, quantization_config=int8_config())
    assert isinstance(model.language_model.model.layers[0].mlp.up_proj.weight, Int8Tensor)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert not isinstance(model.get_output_embeddings().weight, Int8Tensor)


@pytest.mark.slow
def test_int8_checkpoint_loads_as_int8_through_auto_and_the_pipeline(saved_model, processor, fsdd_batch, tmp_path):
    """`python -m training.tools.int8` writes a folder that Auto classes and the ASR pipeline load as int8 with no
    quantization argument, and that hears the same words as the float model."""
    clips, texts = fsdd_batch
    write_int8_checkpoint(saved_model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["quantization_config"]["quant_method"] == "torchao"
    model = AutoModelForSpeechSeq2Seq.from_pretrained(tmp_path, trust_remote_code=True)
    assert all(_int8_linears(model.language_model).values())  # the LM head included
    assert not isinstance(model.get_input_embeddings().weight, Int8Tensor)
    assert transcribe(model, processor, clips) == texts
    asr = pipeline("automatic-speech-recognition", model=str(tmp_path), trust_remote_code=True)
    assert [out["text"] for out in asr([{"raw": c, "sampling_rate": 16_000} for c in clips])] == texts


def test_untying_copies_a_tied_head_once(make_model):
    model = make_model(tie_word_embeddings=True)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert untie_output_embeddings(model) is True
    head, embeddings = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    assert head is not embeddings
    assert torch.equal(head, embeddings)
    assert model.config.text_config.tie_word_embeddings is False
    assert untie_output_embeddings(model) is False


@pytest.mark.slow
def test_eval_asr_int8_and_compiled_give_the_float_words(saved_model, fsdd_rows, tmp_path):
    """`eval_asr --int8 --compile`: int8 weights, compiled forward, static cache; the overfit model still reads its
    four digits (the float model's WER is 0)."""
    chosen, seen = [], set()
    for row in fsdd_rows:
        if row["speaker"] == "jackson" and row["fsdd_split"] == "test" and row["digit"] not in seen:
            chosen.append({"path": str(FSDD_DIR / row["path"]), "transcript": row["transcript"]})
            seen.add(row["digit"])
    manifest = tmp_path / "digits.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in chosen[:4]))
    argv = ["--model", str(saved_model), "--data", str(manifest), "--no-peak-normalize", "--out-dir", str(tmp_path)]
    try:
        results = eval_asr_main([*argv, "--int8", "--compile", "--max-new-tokens", "12"])
    finally:
        torch._dynamo.reset()
    assert results["average_wer"] == 0.0
    assert results["decoding"]["cache_implementation"] == "static"


@pytest.mark.slow
def test_compiled_static_cache_decoding_gives_the_eager_tokens_on_50_held_out_clips(
    overfit_models, processor, fsdd_rows
):
    """Issue 19: `model.forward = torch.compile(...)` with `cache_implementation="static"` emits exactly the eager
    tokens, on 50 real clips the model never trained on (FSDD test takes of all speakers), batched."""
    model, _ = overfit_models("llama", "stack")
    held_out = [row for row in fsdd_rows if row["speaker"] != "jackson"][:50]
    assert len(held_out) == 50
    inputs = processor(
        audio=[load_fsdd_clip(row) for row in held_out], sampling_rate=16_000, padding="longest", return_tensors="pt"
    )
    settings = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": False}
    eager = model.generate(**inputs, **settings)
    compiled_forward = torch.compile(model.forward, fullgraph=True, dynamic=False)
    model.forward = compiled_forward
    try:
        compiled = model.generate(**inputs, cache_implementation="static", **settings)
    finally:
        del model.forward  # back to the class's forward: the fixture's model is shared
        torch._dynamo.reset()
    assert torch.equal(compiled, eager)
