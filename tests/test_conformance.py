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


def test_fullgraph_compiled_forward_gives_the_eager_tokens_with_a_static_cache(make_model, processor):
    """The class claims `_can_compile_fullgraph` (transformers then compiles the decode step of static-cache
    generation on GPUs), and users compile `forward` themselves as transformers' docs show: prefill and decode steps
    must trace without a graph break and give the eager model's tokens."""
    assert MelLLMForSpeechLM._can_compile_fullgraph is True
    model = make_model("llama", "stack")
    inputs = processor(audio=_clips(), sampling_rate=16_000, padding="longest", return_tensors="pt")
    settings = {"max_new_tokens": 8, "min_new_tokens": 8, "do_sample": False}
    eager = model.generate(**inputs, **settings)
    assert torch.equal(model.generate(**inputs, cache_implementation="static", **settings), eager)
    model.forward = torch.compile(model.forward, fullgraph=True, dynamic=False)
    try:
        compiled = model.generate(**inputs, cache_implementation="static", **settings)
    finally:
        torch._dynamo.reset()
    assert torch.equal(compiled, eager)


def test_a_static_cache_longer_than_the_context_is_refused(make_model, processor):
    """With a static cache, the context check reads the cache's size (no host sync per step), so a cache that could
    outgrow the backbone's positions is refused up front with the way out."""
    model = make_model("llama", "stack")
    limit = model.config.text_config.max_position_embeddings
    inputs = processor(audio=_clips()[:1], sampling_rate=16_000, return_tensors="pt")
    with pytest.raises(ValueError, match="static cache: lower max_new_tokens"):
        model.generate(**inputs, cache_implementation="static", max_new_tokens=limit, do_sample=False)


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
        ({"padding": "max_length"}, ValueError, "needs max_length"),
        ({"padding": "max_length", "max_length": 5}, ValueError, "more than max_length=5.*never truncates"),
        ({"truncation": True, "max_length": 4}, ValueError, "would cut audio placeholders out of row 0"),
        ({"stride": 4}, ValueError, r"does not support \['stride'\]"),
        ({"padding": False}, ValueError, "Rows of different lengths"),
        ({"max_lenght": 10}, TypeError, r"unexpected argument\(s\) \['max_lenght'\]"),
        ({"text_kwargs": {"max_lenght": 10}}, TypeError, r"unexpected argument\(s\).*max_lenght"),
    ],
)
def test_processor_options_it_cannot_honour_raise(processor, options, error, message):
    with pytest.raises(error, match=message):
        processor(_clips(), sampling_rate=16_000, **options)


def test_tokenizer_padding_options_reach_the_rows(processor):
    """padding / max_length / pad_to_multiple_of / padding_side / truncation act as the tokenizer's do, labels
    padded and cut alike."""
    clips, targets = _clips(), ["one", "two three"]
    longest = processor(clips, sampling_rate=16_000, text_target=targets)
    width = longest["input_ids"].shape[1]
    fixed = processor(clips, sampling_rate=16_000, text_target=targets, padding="max_length", max_length=width + 7)
    assert fixed["input_ids"].shape == (2, width + 7)
    assert torch.equal(fixed["input_ids"][:, 7:], longest["input_ids"])  # left padding: the rows end alike
    assert torch.equal(fixed["labels"][:, 7:], longest["labels"])
    assert (fixed["labels"][:, :7] == -100).all()
    assert (fixed["attention_mask"][:, :7] == 0).all()
    multiple = processor(clips, sampling_rate=16_000, pad_to_multiple_of=16, padding_side="right")
    assert multiple["input_ids"].shape[1] % 16 == 0
    assert (multiple["attention_mask"][:, 0] == 1).all()  # right padding: every row starts at position 0
    one = processor(clips[:1], sampling_rate=16_000, padding=False)
    assert one["attention_mask"].all()
    cut = processor(clips, sampling_rate=16_000, text_target=targets, truncation=True, max_length=width - 1)
    assert cut["input_ids"].shape == (
        2,
        width - 1,
    )  # the longer row loses its last (target) token, as a tokenizer cuts
    full = longest["input_ids"][longest["attention_mask"].sum(-1).argmax()]
    assert torch.equal(cut["input_ids"][longest["attention_mask"].sum(-1).argmax()], full[: width - 1])


@pytest.mark.parametrize("frontend", ["stack", "conv"])
def test_get_audio_features_returns_transformers_audio_output(make_model, processor, frontend):
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    model = make_model("llama", frontend)
    features = processor.feature_extractor(_clips(), sampling_rate=16_000)
    audio = model.get_audio_features(features["input_features"], features["input_features_mask"])
    assert isinstance(audio, BaseModelOutputWithPooling)
    torch.testing.assert_close(audio.pooler_output, audio.last_hidden_state[audio.patch_mask])
    assert audio.pooler_output.shape[0] == sum(processor.feature_extractor.num_audio_tokens(len(c)) for c in _clips())
    assert audio.hidden_states is None
    assert audio.attentions is None
    with_states = model.get_audio_features(
        features["input_features"], features["input_features_mask"], output_hidden_states=True, output_attentions=True
    )
    (patches,) = with_states.hidden_states  # the front end's output: the only state an encoder-free path has
    assert patches.shape[:2] == audio.patch_mask.shape
    as_tuple = model.get_audio_features(features["input_features"], features["input_features_mask"], return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], audio.last_hidden_state)


@pytest.mark.parametrize("options", [{}, {"num_beams": 2}, {"cache_implementation": "static"}])
def test_generation_from_inputs_embeds_matches_input_ids(overfit_models, processor, fsdd_batch, options):
    """Callers that build the prompt's embeddings themselves pass `inputs_embeds` with `input_features`; the audio
    placeholders are found by the audio token's embedding, as in Qwen2-Audio and Voxtral."""
    model, _ = overfit_models("llama", "stack")
    clips, _ = fsdd_batch
    inputs = processor(audio=clips[:2], sampling_rate=16_000, return_tensors="pt")
    settings = {"max_new_tokens": 6, "do_sample": False, **options}
    from_ids = model.generate(**inputs, **settings)[:, inputs["input_ids"].shape[1] :]
    embeds = model.get_input_embeddings()(inputs["input_ids"])
    from_embeds = model.generate(
        inputs_embeds=embeds,
        attention_mask=inputs["attention_mask"],
        input_features=inputs["input_features"],
        input_features_mask=inputs["input_features_mask"],
        **settings,
    )
    assert torch.equal(from_embeds, from_ids)
    with pytest.raises(ValueError, match="placeholder"):  # embeddings without the audio token's: a clear error
        model(inputs_embeds=embeds + 1.0, input_features=inputs["input_features"])


def test_base_model_is_the_language_model(make_model, tmp_path):
    model = make_model()
    assert model.base_model is model.language_model
    model.save_pretrained(tmp_path)
    loaded = MelLLMForSpeechLM.from_pretrained(tmp_path)  # the prefix changes no checkpoint key
    for (name, saved), (_, reloaded) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(saved, reloaded), name


def test_processor_to_dict_round_trips_through_save_and_load(processor, tmp_path):
    """Saving writes auto_map for the Auto classes; the in-memory processor must not change by being saved."""
    from transformers import AutoFeatureExtractor, AutoProcessor

    before = processor.to_dict()
    extractor_before = processor.feature_extractor.to_dict()
    processor.save_pretrained(tmp_path)
    assert processor.to_dict() == before
    assert processor.feature_extractor.to_dict() == extractor_before
    loaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert loaded.to_dict() == before
    assert AutoFeatureExtractor.from_pretrained(tmp_path, trust_remote_code=True).to_dict() == extractor_before


def test_apply_transcription_request_builds_the_asr_inputs(processor, tmp_path):
    import soundfile
    import soxr

    clips = _clips()
    expected = processor(audio=clips, sampling_rate=16_000)
    request = processor.apply_transcription_request(clips, sampling_rate=16_000)
    for key in ("input_ids", "attention_mask", "input_features", "input_features_mask"):
        assert torch.equal(request[key], expected[key]), key
    prompts = processor.apply_transcription_request(clips, prompt=[None, "Write what is said."], tokenize=False)
    assert prompts[0] == processor.build_prompt()
    assert "Write what is said." in prompts[1]
    by_hand = processor(text=prompts, audio=clips, sampling_rate=16_000)
    custom = processor.apply_transcription_request(clips, prompt=[None, "Write what is said."], sampling_rate=16_000)
    assert torch.equal(custom["input_ids"], by_hand["input_ids"])
    assert not torch.equal(custom["input_ids"], expected["input_ids"])
    path = tmp_path / "clip.wav"  # a file at 8 kHz: read and resampled
    soundfile.write(path, soxr.resample(clips[0], 16_000, 8_000), 8_000)
    from_file = processor.apply_transcription_request(str(path))
    assert from_file["input_ids"].shape[0] == 1
    assert abs(from_file["input_features_mask"].sum() - expected["input_features_mask"][0].sum()) <= 1
    with pytest.raises(ValueError, match="2 prompts for 1 clips"):
        processor.apply_transcription_request(clips[:1], prompt=["a", "b"])


def test_a_2d_array_is_a_batch_for_the_processor(processor):
    rows = np.stack([clip[:5_000] for clip in _clips()])  # (2, 5000), as leaderboard scripts may pass it
    batch = processor(rows, sampling_rate=16_000, padding="longest", return_tensors="pt")
    assert batch["input_features"].shape[0] == batch["input_ids"].shape[0] == 2


def test_the_bundled_wer_module_matches_jiwer_offline(monkeypatch):
    """`evaluate.load("wer")` downloads its script; the bundled module loads offline and gives the same numbers."""
    import jiwer

    from training.evaluation.wer_metric import load_wer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    wer = load_wer()
    predictions, references = ["a b c", "d", "e f"], ["a x c", "d e", "e f"]
    assert wer.compute(predictions=predictions, references=references) == pytest.approx(2 / 7)
    assert wer.compute(predictions=predictions, references=references) == pytest.approx(
        jiwer.wer(references, predictions)
    )
    assert wer.compute(predictions=predictions, references=references, concatenate_texts=True) == pytest.approx(2 / 7)


def test_per_modality_kwargs_reach_the_processor_and_conflicts_raise(processor):
    """transformers' processors take `text_kwargs` / `audio_kwargs` / `common_kwargs`; none may be dropped silently."""
    clips = _clips()
    with pytest.raises(ValueError, match="8000 Hz"):  # the rate inside audio_kwargs is checked, not ignored
        processor(audio=clips, audio_kwargs={"sampling_rate": 8_000})
    with pytest.raises(ValueError, match="sampling_rate was passed two times"):
        processor(audio=clips, sampling_rate=16_000, audio_kwargs={"sampling_rate": 8_000})
    right = processor(audio=clips, sampling_rate=16_000, text_kwargs={"padding_side": "right"})
    assert torch.equal(
        right["input_ids"], processor(audio=clips, sampling_rate=16_000, padding_side="right")["input_ids"]
    )
    as_numpy = processor(audio=clips, sampling_rate=16_000, common_kwargs={"return_tensors": "np"})
    assert isinstance(as_numpy["input_ids"], np.ndarray)
    with pytest.raises(ValueError, match="would cut audio placeholders"):  # raised wherever the option comes from
        processor(audio=clips, sampling_rate=16_000, text_kwargs={"truncation": True, "max_length": 4})
    with pytest.raises(ValueError, match="never cuts audio"):
        processor(audio=clips, sampling_rate=16_000, audio_kwargs={"truncation": True})


def test_pipeline_runs_through_25_real_clips_of_mixed_rates_and_formats(
    overfit_models, processor, fsdd_rows, tmp_path
):
    """25 FSDD recordings written as a user's folder might hold them (8 kHz int16 WAV, 16 kHz FLAC, 22.05 kHz
    stereo WAV, 44.1 kHz float WAV), batched through the pipeline by path: every clip gets a transcript, the four
    the model was trained on say their digit in every format, and batching changes nothing."""
    import soundfile
    import soxr

    from tests.conftest import FSDD_DIR, load_fsdd_clip

    model, _ = overfit_models("llama", "stack")
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    trained, digits = [], set()  # fsdd_batch's clips: the first test take of each of four digits
    for row in fsdd_rows:
        if row["speaker"] == "jackson" and row["fsdd_split"] == "test" and row["digit"] not in digits:
            trained.append(row)
            digits.add(row["digit"])
    trained = trained[:4]
    others = [r for r in fsdd_rows if r not in trained][:: max(1, len(fsdd_rows) // 9)][:9]
    formats = [(8_000, "WAV", "PCM_16", 1), (16_000, "FLAC", "PCM_16", 1), (22_050, "WAV", "PCM_16", 2)]
    formats.append((44_100, "WAV", "FLOAT", 1))
    paths, expected = [], []
    for i, row in enumerate(trained * 4 + others):
        rate, kind, subtype, channels = formats[i % 4] if i < 16 else formats[i % len(formats)]
        audio = soxr.resample(load_fsdd_clip(row, 8_000), 8_000, rate) if rate != 8_000 else None
        if audio is None:
            audio, _ = soundfile.read(FSDD_DIR / row["path"], dtype="float32")
        audio = np.stack([audio, audio], axis=1) if channels == 2 else audio
        path = tmp_path / f"clip{i:02d}.{kind.lower()}"
        soundfile.write(path, audio, rate, format=kind, subtype=subtype)
        paths.append(str(path))
        expected.append(row["transcript"] if i < 16 else None)
    assert len(paths) == 25
    asr = pipeline("automatic-speech-recognition", model=str(tmp_path / "model"), trust_remote_code=True)
    batched = asr(paths, batch_size=8, max_new_tokens=6)
    assert [r["text"] for r in batched] == [r["text"] for r in asr(paths, max_new_tokens=6)]
    assert all(isinstance(r["text"], str) for r in batched)
    assert [r["text"] for r in batched[:16]] == expected[:16]


@pytest.mark.parametrize("label_logits_only", [False, True])
def test_the_loss_trains_on_shift_labels_when_given(make_model, processor, label_logits_only):
    """Sequence-parallel training (accelerate CP, DeepSpeed ALST) hands the model targets already shifted, as
    `shift_labels`, and the loss must follow them (transformers' test_causal_lm_loss_honors_shift_labels oracle: it
    moves when shift_labels change, not when only labels change), on both loss paths."""
    model = make_model()
    model.train()
    model.label_logits_only = label_logits_only
    batch = processor(_clips(), sampling_rate=16_000, text_target=["one", "two three"])
    shift_labels = torch.nn.functional.pad(batch["labels"], (0, 1), value=-100)[:, 1:].contiguous()
    other_targets = shift_labels.clone()
    other_targets[other_targets != -100] = 5
    other_labels = batch["labels"].clone()
    other_labels[other_labels != -100] = 7
    with torch.no_grad():
        reference = model(**batch, shift_labels=shift_labels).loss
        only_labels_changed = model(**{**batch, "labels": other_labels}, shift_labels=shift_labels).loss
        targets_changed = model(**batch, shift_labels=other_targets).loss
        plain = model(**batch).loss
    torch.testing.assert_close(only_labels_changed, reference)
    torch.testing.assert_close(plain, reference)  # the same targets, shifted by the model itself
    assert not torch.isclose(targets_changed, reference)


def test_a_causal_lm_checkpoint_loads_as_the_backbone(tmp_path):
    """`MelLLMForSpeechLM.from_pretrained` on a plain causal LM's folder (transformers' base-model loading, as its
    test_correct_missing_keys does) builds a Mel-LLM around that LM with its weights, the audio path new."""
    from transformers import LlamaForCausalLM

    from training.tiny import tiny_text_config

    torch.manual_seed(0)
    text_model = LlamaForCausalLM(tiny_text_config("llama"))
    text_model.save_pretrained(tmp_path)
    model, info = MelLLMForSpeechLM.from_pretrained(tmp_path, output_loading_info=True)
    assert model.config.text_config.model_type == "llama"
    assert all(key.startswith(("audio_frontend.", "multi_modal_projector.")) for key in info["missing_keys"])
    loaded = model.language_model.state_dict()
    for name, weight in text_model.state_dict().items():
        assert torch.equal(loaded[name], weight), name
