"""Generation: a tiny model overfit on real FSDD clips transcribes them; cache, batching and beams agree."""

import pytest
import torch

from tests.conftest import transcribe
from training.tiny import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_overfit_one_batch_then_transcribe_exactly(overfit_models, processor, fsdd_batch, family):
    model, loss = overfit_models(family, "stack")
    clips, texts = fsdd_batch
    assert loss < 0.05
    assert transcribe(model, processor, clips) == texts


def test_conv_frontend_overfits_too(overfit_models, processor, fsdd_batch):
    model, loss = overfit_models("llama", "conv")
    assert loss < 0.05
    assert transcribe(model, processor, fsdd_batch[0]) == fsdd_batch[1]


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_generation_equals_one_by_one(overfit_models, processor, fsdd_batch, family):
    model, _ = overfit_models(family, "stack")
    clips = fsdd_batch[0]
    inputs = processor(audio=clips, sampling_rate=16_000)
    assert (inputs["attention_mask"][:, 0] == 0).any(), "the batch should need left padding"
    batched = transcribe(model, processor, clips)
    one_by_one = [transcribe(model, processor, [clip])[0] for clip in clips]
    assert batched == one_by_one


def test_cache_and_no_cache_agree(overfit_models, processor, fsdd_batch):
    model, _ = overfit_models("llama", "stack")
    inputs = processor(audio=fsdd_batch[0], sampling_rate=16_000)
    with_cache = model.generate(**inputs, do_sample=False, max_new_tokens=6, use_cache=True)
    without_cache = model.generate(**inputs, do_sample=False, max_new_tokens=6, use_cache=False)
    assert torch.equal(with_cache, without_cache)


def test_beam_search_finds_the_transcripts(overfit_models, processor, fsdd_batch):
    model, _ = overfit_models("qwen2", "stack")
    assert transcribe(model, processor, fsdd_batch[0], num_beams=3) == fsdd_batch[1]


def test_audio_is_encoded_only_at_prefill(overfit_models, processor, fsdd_batch):
    model, _ = overfit_models("llama", "stack")
    calls = []
    handle = model.audio_frontend.register_forward_hook(lambda *args: calls.append(1))
    try:
        tokens = model.generate(
            **processor(audio=fsdd_batch[0][:1], sampling_rate=16_000), do_sample=False, max_new_tokens=5
        )
    finally:
        handle.remove()
    assert tokens.shape[1] > 1
    assert len(calls) == 1


def test_default_generation_config_stops_at_eos(overfit_models, processor, fsdd_batch):
    model, _ = overfit_models("llama", "stack")
    inputs = processor(audio=fsdd_batch[0][:1], sampling_rate=16_000)
    tokens = model.generate(**inputs)  # the saved defaults: greedy, max_new_tokens=512, stop at EOS
    new_tokens = tokens[0, inputs["input_ids"].shape[1] :].tolist()
    assert new_tokens[-1] == processor.tokenizer.eos_token_id
    assert len(new_tokens) < 10


def test_an_int8_quantized_model_still_transcribes(make_model, processor):
    """`torch.ao.quantization.quantize_dynamic` turns every linear (the projector too) into an int8 module without
    parameters; the audio path then takes its input dtype from the feature norm and generation runs."""
    import numpy as np

    model = make_model()
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    assert next(quantized.multi_modal_projector.parameters(), None) is None
    clips = [(0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)]
    inputs = processor(clips, sampling_rate=16_000, return_tensors="pt")
    tokens = quantized.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert tokens.shape[1] == inputs["input_ids"].shape[1] + 3
