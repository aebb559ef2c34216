"""Habits of outside code that calls the model, processor and pipeline the transformers way (issue 20)."""

import logging

import numpy as np
import pytest
import torch
from transformers import pipeline

from modeling_mel_llm import MelLLMForSpeechLM


def _clips() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (9_000, 5_000)]


def test_return_dict_false_gives_the_output_as_a_tuple(make_model, processor):
    model = make_model()
    batch = processor(audio=_clips(), sampling_rate=16_000, text_target=["one", "two"])
    as_object = model(**batch)
    as_tuple = model(**batch, return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], as_object.loss)
    torch.testing.assert_close(as_tuple[1], as_object.logits)


def test_resizing_the_embeddings_sets_the_vocabulary_size(make_model):
    model = make_model()
    size = model.config.vocab_size + 8
    model.resize_token_embeddings(size)
    assert model.config.vocab_size == model.config.text_config.vocab_size == size
    assert model.get_input_embeddings().num_embeddings == size
    model.config.vocab_size = size + 1  # code that sets it directly
    assert model.config.text_config.vocab_size == size + 1


def test_padding_side_none_means_the_default(processor):
    default = processor(audio=_clips(), sampling_rate=16_000)
    unset = processor(audio=_clips(), sampling_rate=16_000, padding_side=None)
    assert torch.equal(unset["input_ids"], default["input_ids"])
    assert torch.equal(
        processor.tts_inputs(["one", "two three"], padding_side=None)["attention_mask"][:, 0], torch.tensor([0, 1])
    )


def test_the_model_does_not_claim_fullgraph_compilation():
    """`forward` checks the context length against the cache length as a Python number at every step, which a
    fullgraph-compiled decode step cannot do; so the class must not declare that it compiles fullgraph."""
    assert MelLLMForSpeechLM._can_compile_fullgraph is False


def test_asr_pipeline_ignores_tokenizer_only_arguments_with_a_warning(make_model, processor, tmp_path, caplog):
    """`evaluate`'s ASR evaluator calls every pipeline with truncation=True."""
    make_model().save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    asr = pipeline("automatic-speech-recognition", model=str(tmp_path), trust_remote_code=True)
    clip = {"raw": _clips()[0], "sampling_rate": 16_000}
    plain = asr(clip, max_new_tokens=3)
    with caplog.at_level(logging.WARNING):
        assert asr(clip, max_new_tokens=3, truncation=True) == plain
    assert "ignores ['truncation']" in caplog.text
    with pytest.raises(TypeError, match="Unexpected argument"):
        asr(clip, not_an_option=1)


def test_a_script_that_only_knows_speech_processors_gets_the_transcripts(overfit_models, processor, fsdd_batch):
    """Leaderboard-style: clips as the first argument, Whisper's keyword arguments, and `batch_decode` of the whole
    `generate` output; the transcripts come back without the prompt."""
    model, _ = overfit_models("llama", "stack")
    clips, texts = fsdd_batch
    inputs = processor(
        clips,
        sampling_rate=16_000,
        padding="longest",
        return_attention_mask=True,
        truncation=False,
        return_tensors="pt",
    )
    reference = processor(audio=clips, sampling_rate=16_000)
    assert all(torch.equal(inputs[key], reference[key]) for key in reference)
    tokens = model.generate(**inputs, max_new_tokens=12)
    assert processor.batch_decode(tokens, skip_special_tokens=True) == texts
    assert processor.decode(tokens[0], skip_special_tokens=True) == texts[0]
    answers = processor.batch_decode(tokens[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert answers == texts  # rows without a prompt decode as they are
    assert processor(text="hello there")["input_ids"].shape[0] == 1  # text stays text


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"padding": "max_length"}, ValueError, "pads every batch to its longest row"),
        ({"truncation": True}, ValueError, "never cuts audio"),
        ({"max_lenght": 10}, TypeError, r"unexpected argument\(s\) \['max_lenght'\]"),
    ],
)
def test_processor_options_it_cannot_honour_raise(processor, options, error, message):
    with pytest.raises(error, match=message):
        processor(_clips(), sampling_rate=16_000, **options)
