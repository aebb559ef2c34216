"""TTS in the same model: mel head losses, teacher forcing through the audio path, generation, save/load."""

import numpy as np
import pytest
import torch

from modeling_mel_llm import MelLLMConfig, MelLLMForSpeechLM, MelLossWeights
from modeling_mel_llm.mel_head import predictor_states
from training.scheduled_sampling import mix_in_own_predictions
from training.tiny import build_tiny_model, tiny_text_config


def test_asr_only_model_has_no_head_weights(make_model):
    model = make_model()
    assert model.mel_head is None
    assert not [key for key in model.state_dict() if "mel_head" in key]
    assert "text-to-speech" not in model.config.custom_pipelines
    assert "AutoModelForTextToWaveform" not in model.config.auto_map


def test_tts_config_declares_pipeline_and_auto_class():
    config = MelLLMConfig(text_config=tiny_text_config(), tts_head=True, frames_per_patch=4)
    assert not hasattr(config, "tts_frames_per_step")  # one name for the patch length: frames_per_patch
    assert config.custom_pipelines["text-to-speech"]["impl"] == "pipeline_tts_mel_llm.MelLLMTextToSpeechPipeline"
    assert config.auto_map["AutoModelForTextToWaveform"] == "modeling_mel_llm.MelLLMForSpeechLM"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tts_postnet_kernel": 4}, "odd"),
        ({"tts_latent_dim": 0}, "tts_latent_dim must be positive"),
    ],
)
def test_bad_tts_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MelLLMConfig(text_config=tiny_text_config(), tts_head=True, **kwargs)


def test_loss_weights_are_checked_and_stay_out_of_the_config(make_model):
    with pytest.raises(ValueError, match="stop_pos_weight must be positive"):
        MelLossWeights(stop_pos_weight=0.0)
    with pytest.raises(ValueError, match="kl must be >= 0"):
        MelLossWeights(kl=-1.0)
    model = make_model()
    model.tts_loss_weights = MelLossWeights(kl=0.5)
    assert "kl" not in str(model.config.to_dict())


def test_loss_terms_finite_and_falling_on_overfit(tts_model):
    _, history = tts_model
    first, last = history[0], history[-1]
    assert all(np.isfinite(v) for step in history for v in step.values())
    assert last["total"] < 0.3 * first["total"]
    assert last["l1"] < 0.5 * first["l1"]
    assert last["l2"] < 0.3 * first["l2"]
    assert last["stop"] < 0.2 * first["stop"]


def test_generation_stops_via_stop_head(tts_model, processor, tts_clips):
    model, _ = tts_model
    clips, texts = tts_clips
    speech = model.generate_speech(**processor.tts_inputs(texts), max_new_frames=400, temperature=0.0)
    target_frames = [processor.feature_extractor.num_frames(len(clip)) for clip in clips]
    expected = [8 * -(-n // 8) for n in target_frames]  # whole patches: 4 and 5
    assert speech.mel_lengths.tolist() == expected
    assert speech.mel_features.shape == (2, max(expected), 80)
    assert (speech.stop_probabilities[:, 0] < 0.5).all()


def test_generated_mel_is_close_to_the_learned_clip_in_log_mel_scale(tts_model, processor, tts_clips):
    """Predictions are de-normalised: compare with the feature extractor's own log-mel of the training clip."""
    model, _ = tts_model
    clips, texts = tts_clips
    speech = model.generate_speech(**processor.tts_inputs(texts[:1]), max_new_frames=400, temperature=0.0)
    reference = processor.feature_extractor(clips[:1], sampling_rate=16_000)["input_features"][0]
    frames = reference.shape[0]
    generated = speech.mel_features[0, :frames]
    assert (generated - reference).abs().mean() < 0.25 * (reference - reference.mean(0)).abs().mean()


def test_teacher_forced_speech_predicts_each_patch_from_the_recorded_ones_before_it(tts_model, processor, tts_clips):
    model, _ = tts_model
    clips, texts = tts_clips
    tts = processor.tts_inputs(texts, audio=clips, sampling_rate=16_000)
    model.train()  # the diagnostic runs in eval mode and gives the mode back
    speech = model.teacher_forced_speech(**tts)
    assert model.training
    model.eval()
    targets, mask = tts["mel_targets"], tts["mel_target_mask"].bool()
    assert speech.mel_features.shape == targets.shape
    assert speech.mel_lengths.tolist() == mask.sum(-1).tolist()
    assert (speech.mel_features[~mask] == 0).all()
    spread = (targets[mask] - targets[mask].mean(0)).abs().mean()
    assert (speech.mel_features[mask] - targets[mask]).abs().mean() < 0.25 * spread  # the overfit clips come back

    patch, k = model.config.frames_per_patch, 2  # change the recording from patch k on
    changed = targets.clone()
    changed[:, k * patch :] += 3.0
    after = model.teacher_forced_speech(**{**tts, "mel_targets": changed})
    margin = model.config.tts_postnet_layers * (model.config.tts_postnet_kernel // 2)  # the post-net's reach
    unchanged_until = (k + 1) * patch - margin  # patches 0..k are predicted from recorded patches before k
    torch.testing.assert_close(after.mel_features[:, :unchanged_until], speech.mel_features[:, :unchanged_until])
    later = mask.clone()
    later[:, : (k + 1) * patch] = False  # real frames of patches k + 1 on: predicted from the changed recording
    assert later.any()
    assert (after.mel_features - speech.mel_features)[later].abs().mean(-1).min() > 1e-3  # every such frame moves


def assert_batched_equals_single(model, processor, texts: list[str], max_new_frames: int) -> None:
    """With a seed, each text's clip from a batch equals the clip it gets alone."""
    batched = model.generate_speech(**processor.tts_inputs(texts), max_new_frames=max_new_frames, seed=3)
    for i, text in enumerate(texts):
        single = model.generate_speech(**processor.tts_inputs([text]), max_new_frames=max_new_frames, seed=3)
        length = int(single.mel_lengths[0])
        assert int(batched.mel_lengths[i]) == length
        torch.testing.assert_close(batched.mel_features[i, :length], single.mel_features[0], atol=1e-4, rtol=1e-4)


def test_batched_equals_unbatched_with_seed(tts_model, processor):
    model, _ = tts_model
    assert_batched_equals_single(model, processor, ["one two three four", "zero"], max_new_frames=64)


def test_seed_controls_sampling(tts_model, processor):
    model, _ = tts_model
    inputs = processor.tts_inputs(["seven"])
    a, b, c = (model.generate_speech(**inputs, max_new_frames=32, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.mel_features, b.mel_features)
    assert not torch.equal(a.mel_features, c.mel_features)


def test_save_load_round_trip_keeps_the_head(tts_model, processor, tmp_path):
    model, _ = tts_model
    model.save_pretrained(tmp_path)
    loaded = MelLLMForSpeechLM.from_pretrained(tmp_path).eval()
    assert loaded.mel_head is not None
    inputs = processor.tts_inputs(["zero", "two"])
    expected = model.generate_speech(**inputs, max_new_frames=48, seed=0)
    actual = loaded.generate_speech(**inputs, max_new_frames=48, seed=0)
    assert torch.equal(expected.mel_features, actual.mel_features)
    assert torch.equal(expected.mel_lengths, actual.mel_lengths)


def test_mixed_asr_and_tts_batch(processor, tts_clips):
    """ASR rows learn text, TTS rows learn mel; the mixed batch's noise-free TTS terms equal its TTS rows' alone."""
    torch.manual_seed(0)
    model = build_tiny_model(processor, tts_head=True)
    clips, texts = tts_clips
    asr = processor(audio=clips[:1], sampling_rate=16_000, text_target=texts[:1])
    tts = processor.tts_inputs(texts[1:], audio=clips[1:], sampling_rate=16_000)
    length = max(asr["input_ids"].shape[1], tts["input_ids"].shape[1])

    def left_pad(x, value):
        return torch.nn.functional.pad(x, (length - x.shape[1], 0), value=value)

    pad_id = processor.tokenizer.pad_token_id
    frames = max(asr["input_features"].shape[1], tts["mel_targets"].shape[1])
    mixed = {
        "input_ids": torch.cat([left_pad(asr["input_ids"], pad_id), left_pad(tts["input_ids"], pad_id)]),
        "attention_mask": torch.cat([left_pad(asr["attention_mask"], 0), left_pad(tts["attention_mask"], 0)]),
        "labels": torch.cat([left_pad(asr["labels"], -100), left_pad(tts["labels"], -100)]),
        "input_features": torch.zeros(2, frames, 80),
        "input_features_mask": torch.zeros(2, frames, dtype=torch.bool),
        "mel_targets": torch.zeros(2, frames, 80),
        "mel_target_mask": torch.zeros(2, frames, dtype=torch.bool),
    }
    n_asr, n_tts = asr["input_features"].shape[1], tts["mel_targets"].shape[1]
    mixed["input_features"][0, :n_asr], mixed["input_features_mask"][0, :n_asr] = asr["input_features"][0], True
    mixed["mel_targets"][1, :n_tts], mixed["mel_target_mask"][1, :n_tts] = tts["mel_targets"][0], True
    output = model(**mixed)
    alone = model(**tts)
    for term in ("kl", "stop"):  # l1/l2 depend on the sampled latent
        torch.testing.assert_close(output.tts_loss_terms[term], alone.tts_loss_terms[term], atol=1e-4, rtol=1e-5)
    assert output.loss > output.tts_loss  # the ASR row adds its text loss
    output.loss.backward()
    assert model.mel_head.latent_proj.weight.grad.abs().sum() > 0


def test_small_latent_variant_trains(processor, tts_clips):
    torch.manual_seed(0)
    model = build_tiny_model(processor, tts_head={"tts_latent_dim": 16, "tts_mlp_size": 64})
    batch = processor.tts_inputs(tts_clips[1], audio=tts_clips[0], sampling_rate=16_000)
    output = model(**batch)
    assert set(output.tts_loss_terms) == {"l1", "l2", "kl", "stop"}
    assert torch.isfinite(output.loss)
    output.loss.backward()
    assert model.mel_head.latent_to_patch.weight.grad.abs().sum() > 0


def test_conv_frontend_embeds_generated_patches_one_by_one(processor):
    """The conv front end sees one patch back and none ahead, so a two-patch window reproduces the full pass."""
    torch.manual_seed(0)
    model = build_tiny_model(processor, frontend="conv", tts_head=True).eval()
    frames = torch.randn(1, 40, 80) * 3 + 5
    full = model.get_audio_features(frames).last_hidden_state
    for j in range(5):
        window = frames[:, max(0, 8 * (j - 1)) : 8 * (j + 1)]
        torch.testing.assert_close(model._embed_generated(window)[0, 0], full[0, j], atol=1e-5, rtol=1e-5)
    speech = model.generate_speech(**processor.tts_inputs(["one"]), max_new_frames=24, seed=0)
    assert speech.mel_features.shape[1] == int(speech.mel_lengths[0]) <= 24


def test_tts_errors_are_clear(make_model, processor, tts_model):
    with pytest.raises(ValueError, match="no words to speak"):
        processor.tts_inputs(["   "])
    asr_only = make_model()
    with pytest.raises(ValueError, match="no TTS head"):
        asr_only.generate_speech(**processor.tts_inputs(["one"]))
    batch = processor.tts_inputs(["one"], audio=[np.zeros(1600, dtype=np.float32)], sampling_rate=16_000)
    with pytest.raises(ValueError, match="tts_head=True"):
        asr_only(**batch)
    model, _ = tts_model
    with pytest.raises(ValueError, match="too long"):
        model.generate_speech(**processor.tts_inputs(["one " * 1500]), max_new_frames=800)


def test_from_text_model_builds_a_real_head(processor, tts_clips):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    text_model = AutoModelForCausalLM.from_config(tiny_text_config("qwen2", vocab_size=len(processor.tokenizer)))
    model = MelLLMForSpeechLM.from_text_model(text_model, processor, tts_head=True, tts_mlp_size=64)
    assert not any(p.is_meta for p in model.mel_head.parameters())
    assert model.mel_head.latent_proj.weight.std() > 0
    batch = processor.tts_inputs(tts_clips[1], audio=tts_clips[0], sampling_rate=16_000)
    assert torch.isfinite(model(**batch).loss)


def test_with_tts_head_keeps_every_trained_weight_and_adds_a_fresh_head(make_model, tmp_path):
    """TTS training from an ASR checkpoint (`init_from` + `tts_head`): the LLM, front end and CMVN load as saved."""
    asr = make_model()
    asr.audio_frontend.norm.global_mean.fill_(0.5)  # as if fitted: must survive the reload
    asr.save_pretrained(tmp_path)
    config = MelLLMConfig.from_pretrained(tmp_path).with_tts_head(tts_mlp_size=48)
    assert config.tts_head
    assert config.tts_mlp_size == 48
    assert "text-to-speech" in config.custom_pipelines
    assert config.auto_map["AutoModelForTextToWaveform"] == "modeling_mel_llm.MelLLMForSpeechLM"
    speaker = MelLLMForSpeechLM.from_pretrained(tmp_path, config=config)
    trained = asr.state_dict()
    loaded = speaker.state_dict()
    assert {key for key in loaded if key not in trained} == {key for key in loaded if key.startswith("mel_head.")}
    for key, value in trained.items():
        assert torch.equal(loaded[key], value), key
    assert speaker.mel_head.refine[0].out_features == 48
    with pytest.raises(ValueError, match="mel head's fields"):
        config.with_tts_head(hidden_size=8)
    with pytest.raises(ValueError, match="training arguments"):
        config.with_tts_head(tts_kl_weight=0.5)


def _record_fed_back_features(model) -> list[torch.Tensor]:
    """The log-mel each forward pass feeds through the audio path, in call order."""
    fed, merge = [], model.merge_audio
    model.merge_audio = lambda ids, embeds, features, mask: fed.append(features) or merge(ids, embeds, features, mask)
    return fed


def _own_prediction(model, tts, fed_back: torch.Tensor) -> torch.Tensor:
    """The model's mean prediction of every patch when `fed_back` frames are its audio input, as log-mel frames."""
    with torch.no_grad():
        embeds = model.get_input_embeddings()(tts["input_ids"])
        embeds = type(model).merge_audio_embeddings(model, tts["input_ids"], embeds, fed_back, tts["mel_target_mask"])
        hidden = model.language_model(
            inputs_embeds=embeds, attention_mask=tts["attention_mask"], output_hidden_states=True
        ).hidden_states[-1]
        mask = tts["mel_target_mask"]
        placeholders = model.tts_placeholders(tts["input_ids"], mask)
        patches, _, _ = predictor_states(hidden, placeholders, mask, model.config.frames_per_patch)
        frames = model.mel_head.to_frames(model.mel_head.step(patches, temperature=0.0).patch)
        return model.audio_frontend.norm.denormalize(frames)[:, : fed_back.shape[1]]


def test_scheduled_sampling_feeds_back_the_models_own_patches(processor, tts_clips):
    """p = 1: every fed-back patch is the model's own prediction from the recordings; the loss keeps the targets."""
    torch.manual_seed(0)
    model = build_tiny_model(processor, tts_head=True)
    with torch.no_grad():  # a near-deterministic head (σ = e⁻⁵), so a prediction can be recomputed and compared
        logvar = model.mel_head.latent_proj.bias[model.mel_head.latent_proj.out_features // 2 :]
        model.mel_head.latent_proj.weight[logvar.numel() :].zero_()
        logvar.fill_(-10.0)
    clips, texts = tts_clips
    tts = processor.tts_inputs(texts[:2], audio=clips[:2], sampling_rate=16_000)
    model.train()
    mixed = mix_in_own_predictions(model, tts, 1.0)
    real = tts["mel_target_mask"].bool()
    own = _own_prediction(model, tts, tts["mel_targets"])
    torch.testing.assert_close(mixed[real], own[real], atol=0.05, rtol=0)
    assert (mixed[real] - tts["mel_targets"][real]).abs().mean() > 0.5
    torch.testing.assert_close(mix_in_own_predictions(model, tts, 0.0), tts["mel_targets"])

    fed = _record_fed_back_features(model)
    teacher_forced, scheduled = model(**tts), model(**tts, mel_inputs=mixed)
    assert torch.equal(fed[0], tts["mel_targets"])  # without mel_inputs: teacher forcing
    assert torch.equal(fed[1], mixed)  # mel_inputs go in, mel_targets stay the loss targets
    assert not torch.isclose(scheduled.tts_loss, teacher_forced.tts_loss)
    scheduled.loss.backward()
    assert model.get_input_embeddings().weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="tts_scheduled_sampling must be"):
        mix_in_own_predictions(model, tts, 1.5)


def test_scheduled_sampling_replaces_that_share_of_patches(processor, tts_clips):
    torch.manual_seed(0)
    model = build_tiny_model(processor, tts_head=True).train()
    clips, texts = tts_clips
    tts = processor.tts_inputs(texts * 8, audio=clips * 8, sampling_rate=16_000)
    mixed = mix_in_own_predictions(model, tts, 0.5)
    frames_per_patch = model.config.frames_per_patch
    real = tts["mel_target_mask"].bool()
    changed = ((mixed != tts["mel_targets"]).any(-1) & real)[:, ::frames_per_patch]  # one flag per patch
    share = changed.sum() / real[:, ::frames_per_patch].sum()
    assert 0.35 < share < 0.65
    unchanged = ~(mixed != tts["mel_targets"]).any(-1)
    for row in range(unchanged.shape[0]):  # a patch is replaced whole or not at all
        per_patch = unchanged[row, : real[row].sum()].split(frames_per_patch)
        assert all(patch.all() or not patch.any() for patch in per_patch)


def test_interleaved_model_speaks_word_by_word_and_ends_each_word_by_its_stop(processor, tts_clips):
    from processing import MelLLMProcessor
    from tests.conftest import overfit_tts

    clips, texts = tts_clips
    two_words, text = np.concatenate(clips), " ".join(texts)
    starts = [0.0, len(clips[0]) / 16_000]
    interleaved = MelLLMProcessor(processor.feature_extractor, processor.tokenizer, tts_interleave_words=True)
    torch.manual_seed(0)
    model = build_tiny_model(processor, "llama", "stack", tts_head=True)
    overfit_tts(model, interleaved, [two_words], [text], steps=150, word_starts=[starts])
    per_word = interleaved.patches_per_word(starts, processor.feature_extractor.num_audio_tokens(len(two_words)), text)
    speech = model.generate_speech(**interleaved.tts_inputs([text]), max_new_frames=400, temperature=0.0)
    assert speech.mel_lengths.tolist() == [8 * sum(per_word)]
    word_ends = (speech.stop_probabilities[0] > 0.5).nonzero().flatten().tolist()
    assert word_ends == [per_word[0] - 1, sum(per_word) - 1]  # the stop head ends each word, then the clip

    never_stop = model.generate_speech(**interleaved.tts_inputs([text]), stop_threshold=2.0, max_frames_per_word=24)
    assert never_stop.mel_lengths.tolist() == [2 * 24]  # each word runs to its cap, then the next word is read
    assert_batched_equals_single(model, interleaved, [text, texts[0]], max_new_frames=200)  # rows at their own pace


def test_stop_targets_mark_the_end_of_each_run_of_placeholders():
    from modeling_mel_llm.mel_head import stop_targets_from_placeholders

    # Row 0: text P P text P P P (two words); row 1 (left-padded): text P P P (one clip) and two padding patches.
    placeholders = torch.tensor([[0, 1, 1, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    patch_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    targets = stop_targets_from_placeholders(placeholders, patch_mask)
    assert targets.tolist() == [[0, 1, 0, 0, 1], [0, 0, 1, -1, -1]]


def test_a_speech_prompt_enters_the_continuous_path_as_teacher_forcing_does(tts_model, processor, tts_clips):
    """Zero-shot continuation: after a 2-patch recorded opening, the stop head reads the state teacher forcing gives
    before patch 2 (the opening's embeddings are the training path's), and the opening leads the output."""
    model, _ = tts_model
    clips, texts = tts_clips
    openings = [clip[: 400 + 15 * 160] for clip in clips]  # 16 frames: two whole patches
    inputs = processor.tts_inputs(texts, speech_prompt=openings, sampling_rate=16_000)
    speech = model.generate_speech(**inputs, max_new_frames=200, temperature=0)
    forced = model.teacher_forced_speech(**processor.tts_inputs(texts, audio=clips, sampling_rate=16_000))
    torch.testing.assert_close(speech.stop_probabilities[:, 2], forced.stop_probabilities[:, 2])
    assert (speech.stop_probabilities[:, :2] == 0).all()
    assert (speech.mel_lengths > 16).all()
    capped = model.generate_speech(**inputs, max_new_frames=8, min_new_frames=8, temperature=0)
    assert capped.mel_lengths.tolist() == [24, 24]  # max_new_frames counts what follows the opening


def test_bad_speech_prompts_are_refused(tts_model, processor, tts_clips):
    model, _ = tts_model
    clips, texts = tts_clips
    with pytest.raises(ValueError, match="one opening per text"):
        processor.tts_inputs(texts, speech_prompt=clips[:1], sampling_rate=16_000)
    with pytest.raises(ValueError, match="no training audio"):
        processor.tts_inputs(texts, audio=clips, speech_prompt=clips, sampling_rate=16_000)
    short = processor.tts_inputs(texts, speech_prompt=[c[:1500] for c in clips], sampling_rate=16_000)
    with pytest.raises(ValueError, match="at least 8 frames"):
        model.generate_speech(**short, max_new_frames=40)
    inputs = processor.tts_inputs(texts)
    with pytest.raises(ValueError, match="2 texts; give one opening per text"):
        model.generate_speech(**inputs, speech_prompt=torch.zeros(1, 16, 80))
    with pytest.raises(ValueError, match="speech_prompt must be log-mel"):
        model.generate_speech(**inputs, speech_prompt=torch.zeros(2, 16, 3))
