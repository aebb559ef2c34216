"""Multi-task recipe: `tts_ratio` turns a share of examples into TTS rows; one checkpoint does ASR and TTS."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modeling_mel_llm import MelLLMConfig
from tests.test_training import losses_from_log, run_args, small_manifests  # noqa: F401  (fixture)
from training.arguments import ModelArguments
from training.data import MelLLMDataCollator, is_tts_example
from training.finetuning import apply_finetuning
from training.tiny import build_tiny_model


def _examples(fsdd_batch, count: int = 8) -> list[dict]:
    clips, texts = fsdd_batch
    return [{"audio": clips[i % 4], "text": texts[i % 4], "id": i, "seed": 1000 + i} for i in range(count)]


def test_tts_ratio_zero_keeps_the_asr_batch(processor, fsdd_batch):
    examples = _examples(fsdd_batch)
    batch = MelLLMDataCollator(processor, tts_ratio=0.0)(examples)
    reference = processor(
        audio=[e["audio"] for e in examples], sampling_rate=16_000, text_target=[e["text"] for e in examples]
    )
    assert set(batch) == set(reference)
    for key, value in reference.items():
        assert torch.equal(batch[key], value), key


def test_mixed_batch_rows_are_asr_or_tts(processor, fsdd_batch):
    examples = _examples(fsdd_batch, 16)
    chosen = [is_tts_example(e, 0.5) for e in examples]
    assert 0 < sum(chosen) < len(chosen)
    batch = MelLLMDataCollator(processor, tts_ratio=0.5)(examples)
    n_asr = len(chosen) - sum(chosen)
    tts_rows = batch["mel_target_mask"].any(-1)
    asr_rows = batch["input_features_mask"].any(-1)
    assert tts_rows.tolist() == [False] * n_asr + [True] * sum(chosen)
    assert torch.equal(asr_rows, ~tts_rows)
    assert (batch["labels"][tts_rows] == -100).all()
    assert (batch["labels"][asr_rows] != -100).any(-1).all()
    torch.manual_seed(0)
    model = build_tiny_model(processor, tts_head=True)
    output = model(**batch)
    assert torch.isfinite(output.loss)
    assert output.tts_loss is not None
    only_tts = MelLLMDataCollator(processor, tts_ratio=1.0)(examples)
    assert "input_features" not in only_tts
    assert torch.isfinite(model(**only_tts).loss)


def test_lora_trains_the_mel_head_fully(processor):
    model = apply_finetuning(
        build_tiny_model(processor, tts_head=True), ModelArguments(finetune="lora", lora_r=4, lora_alpha=8)
    )
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("mel_head.modules_to_save" in name for name in trainable)


@pytest.mark.slow
def test_multitask_run_saves_one_checkpoint_that_transcribes_and_speaks(small_manifests, tmp_path):  # noqa: F811
    from training.tools.tts import load_tts_pipeline
    from training.train import main

    extra = ["--max_steps=12", "--tts_head=true", "--tts_ratio=0.5", "--tts_config={tts_mlp_size: 64}"]
    results = main(run_args(small_manifests, tmp_path, *extra))
    history = losses_from_log(tmp_path)
    assert len(history) == 12
    assert all(np.isfinite(history))
    assert set(results["sets"]) == {"test"}
    tts = load_tts_pipeline(tmp_path)
    assert tts.model.config.tts_mlp_size == 64
    speech = tts("one", max_new_frames=40)
    assert speech["sampling_rate"] == 16_000
    assert 0 < len(speech["audio"]) <= (40 - 1) * 160 + 400
    with pytest.raises(ValueError, match="needs a model with a mel head"):
        main(run_args(small_manifests, tmp_path / "bad", "--max_steps=1", "--tts_ratio=0.5"))


@pytest.mark.slow
def test_asr_checkpoint_learns_to_speak_with_init_from(small_manifests, tmp_path):  # noqa: F811
    from training.tools.tts import load_tts_pipeline
    from training.train import main

    main(run_args(small_manifests, tmp_path / "asr", "--max_steps=2", "--eval_max_samples=0"))
    extra = ["--max_steps=3", "--tts_head=true", "--tts_ratio=1.0", "--eval_max_samples=0"]
    main(run_args(small_manifests, tmp_path / "tts", f"--init_from={tmp_path / 'asr'}", *extra))
    assert len(losses_from_log(tmp_path / "tts")) == 3
    asr_weights = load_file(tmp_path / "asr" / "model.safetensors")
    tts_weights = load_file(tmp_path / "tts" / "model.safetensors")
    assert {key for key in tts_weights if key not in asr_weights} == {k for k in tts_weights if "mel_head" in k}
    norm = "audio_frontend.norm.global_mean"  # CMVN comes from the ASR model, not refitted on the TTS data
    assert torch.equal(tts_weights[norm], asr_weights[norm])
    speech = load_tts_pipeline(tmp_path / "tts")("one", max_new_frames=16)
    assert len(speech["audio"]) > 0

    # A speaking checkpoint trains on with other training settings: the weights and the model's config carry over.
    more = [*extra, "--tts_scheduled_sampling=0.5", "--max_steps=1"]
    main(run_args(small_manifests, tmp_path / "tts_ss", f"--init_from={tmp_path / 'tts'}", *more))
    assert (
        MelLLMConfig.from_pretrained(tmp_path / "tts_ss").to_dict()
        == MelLLMConfig.from_pretrained(tmp_path / "tts").to_dict()
    )
    assert set(load_file(tmp_path / "tts_ss" / "model.safetensors")) == set(tts_weights)


def test_scheduled_sampling_is_a_training_setting_and_checkpoints_share_one_config(small_manifests, tmp_path):  # noqa: F811
    """Scheduled sampling and loss weights change training, not config.json: a checkpoint saved mid-run has the final
    model's config in every field, and none of the training settings."""
    import json

    import yaml

    from modeling_mel_llm.configuration_mel_llm import LEGACY_TRAINING_FIELDS
    from training.train import main

    common = ["--max_steps=6", "--tts_head=true", "--tts_ratio=1.0", "--eval_max_samples=0"]
    common += ["--tts_config={tts_mlp_size: 64}", "--save_strategy=steps", "--save_steps=3"]
    main(run_args(small_manifests, tmp_path / "mixed", *common, "--tts_scheduled_sampling=0.8", "--tts_kl_weight=0.5"))
    main(run_args(small_manifests, tmp_path / "recorded", *common))
    final = json.loads((tmp_path / "mixed" / "config.json").read_text())
    assert json.loads((tmp_path / "mixed" / "checkpoint-3" / "config.json").read_text()) == final
    assert not set(final) & set(LEGACY_TRAINING_FIELDS)
    settings = yaml.safe_load((tmp_path / "mixed" / "run_config.yaml").read_text())
    assert (settings["model"]["tts_scheduled_sampling"], settings["model"]["tts_kl_weight"]) == (0.8, 0.5)
    mixed, recorded = losses_from_log(tmp_path / "mixed"), losses_from_log(tmp_path / "recorded")
    assert mixed[0] != pytest.approx(recorded[0], rel=1e-4)  # the first step already reads its own predictions
    with pytest.raises(ValueError, match="tts_scheduled_sampling needs a model with a mel head"):
        main(run_args(small_manifests, tmp_path / "asr", "--max_steps=1", "--tts_scheduled_sampling=0.5"))


def test_interleaved_tts_trains_from_word_times_and_refuses_a_corpus_without_them(small_manifests, tmp_path):  # noqa: F811
    import json

    from training.augment import AugmentConfig
    from training.data import SpeechTextDataset, read_manifest
    from training.tools.tts import load_tts_pipeline
    from training.train import main

    train, test = small_manifests
    timed = tmp_path / "timed.jsonl"  # FSDD clips are one digit each: the word starts the clip
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    timed.write_text("".join(json.dumps({**row, "word_starts": [0.0]}) + "\n" for row in rows))
    extra = [
        "--max_steps=2",
        "--tts_head=true",
        "--tts_ratio=1.0",
        "--eval_max_samples=0",
        "--tts_interleave_words=true",
    ]
    main([*run_args((timed, test), tmp_path / "tts"), *extra])
    speech = load_tts_pipeline(tmp_path / "tts")("one two", max_new_frames=64)
    assert len(speech["audio"]) > 0
    with pytest.raises(ValueError, match="have no word_starts"):
        main([*run_args(small_manifests, tmp_path / "untimed"), *extra])

    # Speed perturbation stretches the clip, and the word times with it.
    utterances = read_manifest(timed)
    utterance = type(utterances[0])(utterances[0].audio_path, "one two", 1, {"word_starts": [0.0, 0.2]})
    dataset = SpeechTextDataset([utterance], AugmentConfig(speed_perturb=(0.8,), probability=1.0))
    example, plain = dataset[0], SpeechTextDataset([utterance])[0]
    stretch = len(example["audio"]) / len(plain["audio"])
    assert stretch == pytest.approx(1.25, rel=0.01)
    assert example["word_starts"] == pytest.approx([0.0, 0.2 * stretch])


def test_phoneme_tts_learns_a_phoneme_tokenizer_and_speaks_unseen_words(small_manifests, tmp_path):  # noqa: F811
    """`--tts_text_units=phonemes`: the from-scratch tokenizer learns espeak-ng's phoneme strings, the saved
    processor keeps the choice, a word never in training (typed, with a capital and a numeral) is spoken, and a
    fine-tune cannot switch units under a model that learned the other ones."""
    import json

    from processing import MelLLMProcessor, phonemize_words
    from training.tools.tts import load_tts_pipeline
    from training.train import main

    train, test = small_manifests
    timed = tmp_path / "timed.jsonl"
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    timed.write_text("".join(json.dumps({**row, "word_starts": [0.0]}) + "\n" for row in rows))
    extra = ["--max_steps=2", "--tts_head=true", "--tts_ratio=1.0", "--eval_max_samples=0"]
    extra += ["--tts_interleave_words=true", "--tts_text_units=phonemes", "--tiny_vocab_size=1000"]
    main([*run_args((timed, test), tmp_path / "tts"), *extra])
    processor = MelLLMProcessor.from_pretrained(tmp_path / "tts")
    assert processor.tts_text_units == "phonemes"
    zero = phonemize_words("zero")[0]  # "z'i@roU": "oU" occurs in no transcript or prompt, only in phonemes
    spelled = processor.tokenizer.tokenize(" " + zero)
    assert processor.tokenizer.convert_tokens_to_string(spelled) == " " + zero
    assert any("oU" in token for token in spelled)  # merged: the tokenizer learned the phoneme strings
    speech = load_tts_pipeline(tmp_path / "tts")("Zebras at 3", max_new_frames=64)
    assert len(speech["audio"]) > 0
    with pytest.raises(ValueError, match="tts_text_units=phonemes"):
        main(
            [
                *run_args((timed, test), tmp_path / "again"),
                "--max_steps=1",
                f"--init_from={tmp_path / 'tts'}",
                "--tts_text_units=tokens",
                "--eval_max_samples=0",
            ]
        )
