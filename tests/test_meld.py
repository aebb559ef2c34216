"""MELD mode (`MelLLMConfig(speech_latent="discrete")`): codes in for ASR and TTS, codes out when speaking."""

import copy

import numpy as np
import pytest
import torch

from modeling_mel_llm import MelLLMConfig, MelLLMForSpeechLM
from modeling_mel_llm.discrete_latent import LatentLossWeights, LatentTraining
from tests.conftest import REPO_ROOT, overfit, overfit_tts
from tests.fresh_process import auto_load_in_fresh_process
from tests.test_training import losses_from_log, run_args, small_manifests  # noqa: F401  (fixture)
from training.arguments import ModelArguments
from training.finetuning import apply_finetuning
from training.tiny import build_tiny_model, tiny_text_config


LATENT = {"speech_latent": "discrete", "latent_codes": 16, "latent_encoder_channels": 32}


def meld_model(processor, tts: bool = True, seed: int = 0, **latent) -> MelLLMForSpeechLM:
    torch.manual_seed(seed)
    head = {"tts_head": True} if tts else False
    return build_tiny_model(processor, audio_overrides={**LATENT, **latent}, tts_head=head)


@pytest.fixture(scope="module")
def meld_tts(processor, tts_clips):
    model = meld_model(processor)
    history = overfit_tts(model, processor, *tts_clips, steps=150)
    return model, history


def test_discrete_config_defaults_to_one_code_per_frame_and_checks_its_fields():
    config = MelLLMConfig(text_config=tiny_text_config(), frames_per_patch=4, speech_latent="discrete")
    assert config.latent_groups == 4
    assert MelLLMConfig(text_config=tiny_text_config()).latent_groups is None  # continuous: no latent fields in use
    for kwargs, message in [
        ({"speech_latent": "vq"}, "speech_latent='vq'"),
        ({"speech_latent": "discrete", "latent_groups": 3}, "latent_groups=3 must be a positive divisor"),
        ({"speech_latent": "discrete", "latent_codes": 1}, "latent_codes must be >= 2"),
        ({"asr_input": "codes"}, "asr_input='codes'"),
    ]:
        with pytest.raises(ValueError, match=message):
            MelLLMConfig(text_config=tiny_text_config(), frames_per_patch=4, **kwargs)
    with pytest.raises(ValueError, match="latent_estimator='sum'"):
        LatentTraining(estimator="sum")


def test_asr_reads_the_codes_so_the_text_loss_trains_the_encoder(processor, fsdd_batch):
    model = meld_model(processor, tts=False).train()
    assert model.mel_head is None
    batch = processor(audio=fsdd_batch[0], sampling_rate=16_000, text_target=fsdd_batch[1])
    model(**batch).loss.backward()
    assert model.speech_latent.encoder.to_logits.weight.grad.abs().sum() > 0
    assert model.speech_latent.code_embeddings.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.multi_modal_projector.parameters())  # the mel path is not read


def test_the_mel_ablation_reads_patches_through_the_projector(processor, fsdd_batch):
    model = meld_model(processor, tts=False, asr_input="mel").train()
    batch = processor(audio=fsdd_batch[0], sampling_rate=16_000, text_target=fsdd_batch[1])
    model(**batch).loss.backward()
    assert all(p.grad is not None for p in model.multi_modal_projector.parameters())
    assert model.speech_latent.encoder.to_logits.weight.grad is None


def test_a_discrete_model_learns_to_transcribe(processor, fsdd_batch):
    model = meld_model(processor, tts=False)
    assert overfit(model, processor, *fsdd_batch, max_steps=300) < 0.05
    model.eval()
    inputs = processor(audio=fsdd_batch[0], sampling_rate=16_000, return_tensors="pt")
    tokens = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert processor.batch_decode(tokens, skip_special_tokens=True) == fsdd_batch[1]


def test_every_tts_loss_term_is_returned_and_the_objective_falls(meld_tts):
    _, history = meld_tts
    assert set(history[0]) == {"total", "prior", "entropy", "reconstruction", "stop", "usage"}
    assert history[-1]["total"] < history[0]["total"] - 1.0
    assert history[-1]["reconstruction"] < history[0]["reconstruction"]
    assert history[-1]["stop"] < 0.3 * history[0]["stop"]


def test_speech_is_sampled_as_codes_and_is_the_same_alone_or_in_a_batch(meld_tts, processor, tts_clips):
    model, _ = meld_tts
    texts = tts_clips[1]
    both = model.generate_speech(**processor.tts_inputs(texts), max_new_frames=200, seed=3)
    alone = model.generate_speech(**processor.tts_inputs(texts[1:]), max_new_frames=200, seed=3)
    length = int(alone.mel_lengths[0])
    assert int(both.mel_lengths[1]) == length
    torch.testing.assert_close(both.mel_features[1, :length], alone.mel_features[0, :length])
    greedy = [model.generate_speech(**processor.tts_inputs(texts), max_new_frames=200, temperature=0) for _ in "ab"]
    torch.testing.assert_close(greedy[0].mel_features, greedy[1].mel_features)
    assert greedy[0].mel_features.shape[-1] == 80


def test_greedy_speech_stops_near_the_learned_length(meld_tts, processor, tts_clips):
    model, _ = meld_tts
    clips, texts = tts_clips
    speech = model.generate_speech(**processor.tts_inputs(texts), max_new_frames=400, temperature=0)
    learned = [8 * -(-processor.feature_extractor.num_frames(len(c)) // 8) for c in clips]
    assert [abs(n - m) <= 8 for n, m in zip(speech.mel_lengths.tolist(), learned, strict=True)] == [True, True]


def test_teacher_forcing_and_scheduled_sampling_work_on_codes(meld_tts, processor, tts_clips):
    from training.scheduled_sampling import mix_in_own_predictions

    model, _ = meld_tts
    batch = processor.tts_inputs(tts_clips[1], audio=tts_clips[0], sampling_rate=16_000)
    forced = model.teacher_forced_speech(**batch)
    assert forced.mel_features.shape == batch["mel_targets"].shape
    mixed = mix_in_own_predictions(model, dict(batch), probability=1.0)
    assert mixed.shape == batch["mel_targets"].shape
    assert not torch.equal(mixed, batch["mel_targets"])


def test_the_discrete_model_round_trips_through_save_and_auto_loading(meld_tts, processor, tts_clips, tmp_path):
    from transformers import AutoModel

    model, _ = meld_tts
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "discrete_latent.py").is_file()
    loaded = AutoModel.from_pretrained(tmp_path, trust_remote_code=True).eval()
    assert type(loaded).__name__ == "MelLLMForSpeechLM"
    assert loaded.config.speech_latent == "discrete"
    inputs = processor.tts_inputs(tts_clips[1])
    expected = model.generate_speech(**inputs, max_new_frames=120, seed=0).mel_features
    torch.testing.assert_close(loaded.generate_speech(**inputs, max_new_frames=120, seed=0).mel_features, expected)


def test_lora_trains_the_discrete_module_fully(processor):
    model = apply_finetuning(meld_model(processor), ModelArguments(finetune="lora", lora_r=4, lora_alpha=8))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("speech_latent.modules_to_save" in name and "codebook" in name for name in trainable)


def test_both_pipelines_run_a_saved_discrete_model(meld_tts, processor, tts_clips, tmp_path):
    from transformers import pipeline

    from training.tools.push_to_hub import save_for_hub

    model, _ = meld_tts
    save_for_hub(model, processor, tmp_path, repo_id="mel-llm/tiny-meld-test", license="apache-2.0")
    tts = pipeline("text-to-speech", model=str(tmp_path), trust_remote_code=True)
    spoken = tts(tts_clips[1][0], forward_params={"temperature": 0})
    expected = model.generate_speech(**processor.tts_inputs(tts_clips[1][:1]), temperature=0)
    assert spoken["sampling_rate"] == 16_000
    assert len(spoken["audio"]) == (int(expected.mel_lengths[0]) - 1) * 160 + 400
    asr = pipeline("automatic-speech-recognition", model=str(tmp_path), trust_remote_code=True)
    assert isinstance(asr(tts_clips[0][0])["text"], str)
    with pytest.raises(TypeError, match=r"forward_params, not \['num_beams'\]"):
        tts("zero", forward_params={"num_beams": 5})
    assert len(tts("zero", forward_params={"top_k": 1, "max_new_frames": 40})["audio"]) > 0
    assert len(tts("zero", top_k=1, top_p=0.9, repetition_penalty=1.1, max_new_frames=40)["audio"]) > 0
    start = opening(tts_clips[0][0], 2)  # zero-shot continuation: the output opens with the 16 recorded frames
    continued = tts(tts_clips[1][0], speech_prompt=start, temperature=0, return_mel=True)
    prompt = processor.tts_inputs(tts_clips[1][:1], speech_prompt=[start], sampling_rate=16_000)["speech_prompt"]
    np.testing.assert_allclose(continued["mel"][:16], prompt[0].numpy(), atol=1e-4)
    assert len(continued["mel"]) > 16
    with pytest.raises(ValueError, match=r"\['temperature'\] given twice"):
        tts("zero", temperature=0, forward_params={"temperature": 1})


def test_a_meld_run_trains_asr_and_tts_with_an_annealed_gumbel_temperature(small_manifests, tmp_path):  # noqa: F811
    from training.tools.tts import load_tts_pipeline
    from training.train import build_run, main

    extra = [
        "--max_steps=8",
        "--tts_head=true",
        "--tts_ratio=0.5",
        "--latent_config={speech_latent: discrete, latent_codes: 32, latent_groups: 4}",
        "--latent_estimator=gumbel",
        "--latent_temperature=[2.0,0.5]",
    ]
    run = build_run(run_args(small_manifests, tmp_path / "built", *extra))
    assert run.trainer.model.latent_training.estimator == "gumbel"
    two_stage = main(run_args(small_manifests, tmp_path / "two", *extra, "--latent_training=two_stage"))
    assert set(two_stage["sets"]) == {"test"}
    assert all(np.isfinite(losses_from_log(tmp_path / "two")))
    results = main(run_args(small_manifests, tmp_path / "run", *extra))
    assert set(results["sets"]) == {"test"}
    assert all(np.isfinite(losses_from_log(tmp_path / "run")))
    tts = load_tts_pipeline(tmp_path / "run")
    assert tts.model.config.speech_latent == "discrete"
    assert tts.model.config.latent_groups == 4
    assert len(tts("one", max_new_frames=40)["audio"]) > 0


def test_the_gumbel_temperature_anneals_geometrically(processor):
    from transformers import TrainerState

    from training.train import LatentTemperatureCallback

    model = meld_model(processor)
    callback = LatentTemperatureCallback(2.0, 0.5)
    state = TrainerState(max_steps=10)
    temperatures = []
    for step in (0, 5, 10):
        state.global_step = step
        callback.on_step_begin(None, state, None, model=model)
        temperatures.append(model.latent_training.temperature)
    assert temperatures == pytest.approx([2.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="latent_temperature must be positive"):
        LatentTemperatureCallback(1.0, 0.0)


def test_codes_are_drawn_through_transformers_logits_processors(meld_tts, processor, tts_clips, tts_model):
    from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

    model, _ = meld_tts
    inputs = processor.tts_inputs(tts_clips[1])
    greedy = model.generate_speech(**inputs, max_new_frames=120, temperature=0)
    top_one = model.generate_speech(**inputs, max_new_frames=120, top_k=1, seed=5)  # sampling, but from one code
    torch.testing.assert_close(top_one.mel_features, greedy.mel_features)
    nucleus = model.generate_speech(**inputs, max_new_frames=120, top_p=0.9, repetition_penalty=1.3, seed=5)
    assert nucleus.mel_features.shape[-1] == 80
    hidden = torch.randn(1, model.config.hidden_size)
    best = model.speech_latent.sample(hidden, temperature=0).codes.argmax(-1)[0]  # (G,)
    never_again = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1e9)])
    penalised = model.speech_latent.sample(hidden, 0, None, never_again, [best]).codes.argmax(-1)[0]
    assert (penalised != best).all()
    with pytest.raises(ValueError, match="sample discrete codes"):
        tts_model[0].generate_speech(**inputs, top_k=5)  # the continuous head has no codes to filter
    with pytest.raises(ValueError, match=r"top_p within \(0, 1\]"):
        model.generate_speech(**inputs, top_p=0.0)


def test_asr_codes_are_deterministic_in_eval_mode_and_their_perplexity_counts_the_codes_in_use(processor, fsdd_batch):
    model = meld_model(processor, tts=False).eval()
    batch = processor(audio=fsdd_batch[0], sampling_rate=16_000, return_tensors="pt")
    first = model.get_audio_features(batch["input_features"], batch["input_features_mask"]).last_hidden_state
    again = model.get_audio_features(batch["input_features"], batch["input_features_mask"]).last_hidden_state
    assert torch.equal(first, again)
    features, mask = model.audio_frontend.norm(batch["input_features"]), batch["input_features_mask"].bool()
    assert 1.0 < model.speech_latent.code_perplexity(features, mask) <= 16
    with torch.no_grad():  # every patch on one code: perplexity 1
        model.speech_latent.encoder.to_logits.weight.zero_()
        model.speech_latent.encoder.to_logits.bias.copy_(torch.arange(16.0))
    assert model.speech_latent.code_perplexity(features, mask) == pytest.approx(1.0)


def test_joint_training_keeps_the_codes_in_use(processor, fsdd_rows):
    """200 joint ASR + TTS steps on real FSDD speech: more than 8 codes per group in use (no collapse); without the
    usage term the same run collapses onto fewer."""
    from tests.conftest import load_fsdd_clip

    rows = [r for r in fsdd_rows if r["fsdd_split"] == "train"][:16]
    clips, texts = [load_fsdd_clip(r) for r in rows], [r["transcript"] for r in rows]
    asr = processor(audio=clips, sampling_rate=16_000, text_target=texts)
    tts = processor.tts_inputs(texts, audio=clips, sampling_rate=16_000)
    perplexity = {}
    for usage in (0.0, 1.0):
        model = meld_model(processor, latent_codes=64)
        model.latent_training = LatentTraining(LatentLossWeights(usage=usage))
        model.fit_feature_normalization(asr["input_features"], asr["input_features_mask"])
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(200):
            loss = model(**asr).loss + model(**tts).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        features = model.eval().audio_frontend.norm(asr["input_features"])
        perplexity[usage] = model.speech_latent.code_perplexity(features, asr["input_features_mask"].bool())
    assert perplexity[1.0] > 8
    assert perplexity[1.0] > perplexity[0.0]


def test_two_stage_trains_the_autoencoder_alone_then_freezes_it(small_manifests, tmp_path):  # noqa: F811
    """Stage 1: only the encoder and decoder learn (no LLM); stage 2: the text loss reaches the LLM and the code
    embeddings, never the frozen encoder. Joint training's text loss does reach the encoder."""
    from training.train import build_run

    common = ["--max_steps=10", "--latent_config={speech_latent: discrete, latent_codes: 32}", "--tts_head=true"]
    run = build_run(run_args(small_manifests, tmp_path / "two", *common, "--latent_training=two_stage"))
    trainer, model = run.trainer, run.trainer.model
    assert trainer.latent_stage1_steps == 3
    batch = next(iter(trainer.get_train_dataloader()))
    model.train()

    def grads_after_step(step: int) -> tuple[bool, bool]:
        model.zero_grad(set_to_none=True)
        trainer.state.global_step = step
        trainer.compute_loss(model, batch).backward()
        encoder = any(p.grad is not None for p in model.speech_latent.encoder.parameters())
        llm = any(p.grad is not None for p in model.language_model.parameters())
        return encoder, llm

    assert grads_after_step(0) == (True, False)
    assert grads_after_step(3) == (False, True)
    assert model.speech_latent.code_embeddings.grad is not None
    joint = build_run(run_args(small_manifests, tmp_path / "joint", *common)).trainer
    assert joint.latent_stage1_steps == 0
    joint.model.train()
    joint.compute_loss(joint.model, batch).backward()
    assert any(p.grad is not None for p in joint.model.speech_latent.encoder.parameters())
    with pytest.raises(ValueError, match="needs discrete latents"):
        build_run(run_args(small_manifests, tmp_path / "bad", "--max_steps=4", "--latent_training=two_stage"))


def test_a_fresh_process_auto_loads_the_same_logits_and_codes(meld_tts, processor, tts_clips, tmp_path):
    """save_pretrained → AutoModel in a new interpreter, from the saved code files: the same ASR logits and the same
    argmax codes of the clip."""
    model, _ = meld_tts
    model.eval().save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    clip = tts_clips[0][0]
    codes_in_fresh_process = (
        "frames = model.audio_frontend.norm(inputs['input_features'])\n"
        "codes = model.speech_latent.encode(frames, inputs['input_features_mask'].bool())[0].argmax(-1)\n"
        "report['codes'] = codes.tolist()"
    )
    fresh = auto_load_in_fresh_process(tmp_path, clip, codes_in_fresh_process)
    inputs = processor([clip], sampling_rate=16_000, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
        frames = model.audio_frontend.norm(inputs["input_features"])
        codes = model.speech_latent.encode(frames, inputs["input_features_mask"].bool())[0].argmax(-1)
    torch.testing.assert_close(torch.tensor(fresh["logits"]), logits, atol=1e-5, rtol=1e-5)
    assert fresh["codes"] == codes.tolist()
    assert fresh["tokens"] == model.generate(**inputs, max_new_tokens=5, do_sample=False)[0].tolist()


def test_the_gpu_recipe_runs_20_steps_with_a_tiny_backbone_on_local_clips(tmp_path):
    """meld_librispeech.yaml as written (LoRA, joint discrete latents, half the rows TTS), with the backbone and
    data swapped for what CI has: a tiny from-scratch LM and the committed FSDD clips."""
    from training.train import main

    results = main([
        str(REPO_ROOT / "training/configs/meld_librispeech.yaml"), f"--output_dir={tmp_path}", "--text_model=null",
        "--corpus=fsdd", "--fsdd_test_speaker=null", "--max_steps=20", "--bf16=false", "--use_cpu=true",
        "--dataloader_num_workers=0", "--per_device_train_batch_size=4", "--eval_max_samples=4",
        "--save_strategy=no", "--lora_r=4", "--lora_alpha=8", "--activation_checkpointing=false", "--logging_steps=5",
        "--latent_config={speech_latent: discrete, latent_codes: 16, latent_encoder_channels: 32, asr_input: latent}",
    ])  # fmt: skip
    losses = losses_from_log(tmp_path)
    assert len(losses) > 0
    assert all(np.isfinite(losses))
    assert set(results["sets"])  # the held-out split was transcribed
    assert (tmp_path / "adapter").is_dir()  # LoRA on the LLM side, merged into the saved model
    saved = MelLLMForSpeechLM.from_pretrained(tmp_path)
    assert saved.config.speech_latent == "discrete"
    assert saved.config.tts_head
    # its evaluation: zero-shot continuation of recorded openings (FSDD's short clips; the model is its own judge)
    from training.evaluation.eval_continuation import main as continuation

    report = continuation([
        "--model", str(tmp_path), "--manifest", str(REPO_ROOT / "tests/fixtures/fsdd/manifest.jsonl"),
        "--judge", str(tmp_path), "--max-samples", "3", "--min-seconds", "0.3", "--max-seconds", "2",
        "--prompt-seconds", "0.2", "--max-new-frames", "40", "--device", "cpu",
    ])  # fmt: skip
    assert report["utterances"] == 3
    assert report["options"]["top_k"] == 60  # MELD's demo sampling, for discrete latents
    assert np.isfinite(report["wer"])
    assert report["duration_ratio"] > 0
    assert (tmp_path / "continuation" / "continuation.json").is_file()


def opening(clip: np.ndarray, patches: int) -> np.ndarray:
    """The first samples of `clip` whose log-mel is exactly `patches` whole patches of 8 frames (25 ms window, 10 ms
    hop)."""
    return clip[: 400 + (8 * patches - 1) * 160]


def test_zero_shot_continuation_reads_the_opening_as_training_fed_it(meld_tts, processor, tts_clips):
    """The opening's codes enter as teacher forcing enters them: the first patch spoken after a 2-patch opening is
    the teacher-forced prediction of patch 2, and the output starts with the opening itself."""
    model = copy.deepcopy(meld_tts[0])
    with torch.no_grad():  # a frame-local encoder: the opening's codes cannot depend on the frames after it
        for conv in model.speech_latent.encoder.convs:
            conv.weight[..., [0, 1, 3, 4]] = 0
    clips, texts = tts_clips
    inputs = processor.tts_inputs(texts, speech_prompt=[opening(c, 2) for c in clips], sampling_rate=16_000)
    assert inputs["speech_prompt"].shape[1] == 16
    speech = model.generate_speech(**inputs, max_new_frames=200, temperature=0)
    torch.testing.assert_close(speech.mel_features[:, :16], inputs["speech_prompt"], atol=1e-4, rtol=1e-4)
    forced = model.teacher_forced_speech(**processor.tts_inputs(texts, audio=clips, sampling_rate=16_000))
    # frames 16-22: the shorter clip has 23 frames (teacher forcing zeroes past them)
    torch.testing.assert_close(speech.mel_features[:, 16:23], forced.mel_features[:, 16:23])
    assert (speech.mel_lengths > 16).all()


def test_continuations_of_openings_of_different_lengths_are_the_same_alone_or_in_a_batch(
    meld_tts, processor, tts_clips
):
    model, _ = meld_tts
    clips, texts = tts_clips
    openings = [opening(clips[0], 1), opening(clips[1], 3)]
    both = model.generate_speech(
        **processor.tts_inputs(texts, speech_prompt=openings, sampling_rate=16_000), max_new_frames=120, seed=1
    )
    alone = model.generate_speech(
        **processor.tts_inputs(texts[1:], speech_prompt=openings[1:], sampling_rate=16_000), max_new_frames=120, seed=1
    )
    length = int(alone.mel_lengths[0])
    assert int(both.mel_lengths[1]) == length
    torch.testing.assert_close(both.mel_features[1, :length], alone.mel_features[0, :length])
