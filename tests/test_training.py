"""The training recipe: YAML configs, Trainer steps, LoRA/layer selection, resume, 2-process DDP, data checks."""

import itertools
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from tests.conftest import FSDD_DIR, REPO_ROOT, read_fsdd_manifest
from training.arguments import ModelArguments, parse_config
from training.augment import (
    AugmentConfig,
    augment_waveform,
    crop_to_words,
    example_rng,
    spec_augment,
)
from training.data import SpeechTextDataset, Utterance, read_manifest
from training.finetuning import apply_finetuning, load_unmerged


CONFIGS = sorted((REPO_ROOT / "training" / "configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def small_manifests(tmp_path_factory) -> tuple[Path, Path]:
    """16 FSDD training clips (4 digits x 4 speakers) and 8 test clips, as JSONL manifests with absolute paths."""
    folder = tmp_path_factory.mktemp("manifests")
    rows = read_fsdd_manifest()
    train = [r for r in rows if r["fsdd_split"] == "train" and r["digit"] < 4 and r["take"] in (5, 6, 7, 8)]
    train = [r for r in train if r["speaker"] in ("jackson", "theo")][:16]
    test = [r for r in rows if r["fsdd_split"] == "test" and r["digit"] < 4 and r["speaker"] == "jackson"][:8]
    paths = []
    for name, chosen in (("train", train), ("test", test)):
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps({**r, "path": str(FSDD_DIR / r["path"])}) + "\n" for r in chosen))
        paths.append(path)
    return paths[0], paths[1]


def run_args(manifests, output_dir, *extra: str) -> list[str]:
    train, test = manifests
    return [
        "--corpus=manifest",
        f"--train_manifest={train}",
        f"--eval_manifest={test}",
        f"--output_dir={output_dir}",
        "--tiny_hidden_size=64",
        "--tiny_num_layers=2",
        "--tiny_vocab_size=300",
        "--per_device_train_batch_size=4",
        "--per_device_eval_batch_size=8",
        "--learning_rate=3e-3",
        "--logging_steps=1",
        "--save_strategy=no",
        "--report_to=none",
        "--use_cpu=true",
        "--remove_unused_columns=false",
        "--eval_strategy=no",
        "--seed=0",
        *extra,
    ]


def losses(output_dir: Path) -> dict[int, float]:
    state = (
        json.loads((output_dir / "trainer_state.json").read_text())
        if (output_dir / "trainer_state.json").exists()
        else None
    )
    history = state["log_history"] if state else []
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_config_parses(config):
    # use_cpu lets a GPU recipe's bf16 flag validate on this CPU-only machine.
    model_args, data_args, training_args = parse_config([str(config), "--use_cpu=true"])
    assert model_args.finetune in ("full", "lora", "frontend")
    assert data_args.corpus in ("synthetic", "fsdd", "manifest", "hub")
    assert training_args.max_steps > 0


def test_config_flag_equals_a_bare_config_path():
    config = str(REPO_ROOT / "training" / "configs" / "tiny_cpu.yaml")
    bare, flag, equals = (parse_config(argv) for argv in ([config], ["--config", config], [f"--config={config}"]))
    assert bare[1].synthetic_num_train == flag[1].synthetic_num_train == equals[1].synthetic_num_train == 16000
    assert bare[2].max_steps == flag[2].max_steps == equals[2].max_steps
    assert parse_config(["--config", config, "--max_steps=7"])[2].max_steps == 7  # later arguments win
    with pytest.raises(ValueError, match="--config needs a YAML file"):
        parse_config(["--config"])


def test_accelerate_configs_are_valid_yaml():
    for path in (REPO_ROOT / "training" / "configs" / "accelerate").glob("*.yaml"):
        assert "distributed_type" in yaml.safe_load(path.read_text()), path


def test_spaced_and_joined_values_parse_alike(tmp_path):
    """`--key value` (every HF example) and `--key=value` give the same arguments; bare boolean flags stay flags."""
    config = str(REPO_ROOT / "training" / "configs" / "tiny_cpu.yaml")
    spaced = parse_config([config, "--output_dir", str(tmp_path), "--max_steps", "5", "--tts_head", "--disable_tqdm"])
    joined = parse_config(
        [config, f"--output_dir={tmp_path}", "--max_steps=5", "--tts_head=true", "--disable_tqdm=true"]
    )
    assert spaced[2].output_dir == joined[2].output_dir == str(tmp_path)
    assert spaced[2].max_steps == joined[2].max_steps == 5
    assert spaced[0].tts_head
    assert spaced[2].disable_tqdm
    assert parse_config(["--disable_tqdm", "false"])[2].disable_tqdm is False
    with pytest.raises(ValueError, match="--max_steps needs a value"):
        parse_config(["--max_steps"])


def test_overrides_are_typed_and_unknown_keys_fail(tmp_path):
    _, data_args, training_args = parse_config(["--learning_rate=1e-4", "--speed_perturb=[0.9,1.1]", "--max_steps=7"])
    assert training_args.learning_rate == pytest.approx(1e-4)
    assert training_args.max_steps == 7
    assert data_args.speed_perturb == [0.9, 1.1]
    with pytest.raises(ValueError, match="Unknown argument --learnin_rate"):
        parse_config(["--learnin_rate=1e-4"])
    with pytest.raises(ValueError, match="--max_steps='ten'"):
        parse_config(["--max_steps=ten"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 1.0e-3\nnot_a_field: 3\n")
    with pytest.raises(ValueError, match="not_a_field"):
        parse_config([str(bad)])


def test_a_few_trainer_steps_reduce_the_loss(small_manifests, tmp_path):
    from training.train import main

    args = run_args(small_manifests, tmp_path, "--max_steps=30", "--eval_num_beams=2")
    args[args.index(f"--output_dir={tmp_path}")] = "--output_dir"
    args.insert(args.index("--output_dir") + 1, str(tmp_path))  # the spaced form HF examples use
    results = main(args)
    history = losses_from_log(tmp_path)
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert last < 0.6 * first, history
    assert (tmp_path / "training_curve.png").stat().st_size > 1000
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["command"].startswith("python -m training.train --corpus=manifest")  # how to rerun it
    assert "--max_steps=30" in report["command"]
    assert set(results["sets"]) == {"test"}
    assert report["decoding"] == {"max_new_tokens": 128, "num_beams": 2}
    from transformers import AutoModelForSpeechSeq2Seq

    reloaded = AutoModelForSpeechSeq2Seq.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(reloaded).__name__ == "MelLLMForSpeechLM"

    # The run's model card carries its held-out scores as model-index results, its data, and its limits.
    from huggingface_hub import ModelCard

    from processing import MelLLMProcessor
    from training.tools.push_to_hub import save_for_hub

    processor = MelLLMProcessor.from_pretrained(tmp_path)
    save_for_hub(reloaded, processor, tmp_path / "hub", "you/tiny", run_folder=tmp_path, license="apache-2.0")
    card = ModelCard.load(tmp_path / "hub" / "README.md")
    scores = {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert scores == {(name, m): s[m] for name, s in report["sets"].items() for m in ("wer", "cer")}
    assert "## Intended use and limitations" in card.text
    assert f"the JSONL manifest `{small_manifests[0]}`" in card.text  # the training data
    assert "30 steps, batch 4 per device" in card.text


def losses_from_log(output_dir: Path) -> list[float]:
    rows = (output_dir / "training_log.csv").read_text().splitlines()
    header = rows[0].split(",")
    column = header.index("loss")
    return [float(r.split(",")[column]) for r in rows[1:] if r.split(",")[column]]


def test_resume_continues_the_same_loss_curve(small_manifests, tmp_path):
    """
    Augmentation on: a run resumed mid-epoch (step 6 of 4-step epochs) must replay the same data order and the
    same random draws.
    """
    from training.train import main

    options = ["--max_steps=9", "--save_strategy=steps", "--save_steps=6"]
    augment = ["--speed_perturb=[0.9,1.0,1.1]", "--gain_db=6", "--spec_time_masks=1", "--spec_freq_masks=1"]
    full = tmp_path / "full"
    main(run_args(small_manifests, full, *options, *augment))
    resumed = tmp_path / "resumed"
    (resumed / "checkpoint-6").parent.mkdir(parents=True)
    os.symlink(full / "checkpoint-6", resumed / "checkpoint-6")
    main(
        run_args(small_manifests, resumed, *options, f"--resume_from_checkpoint={resumed / 'checkpoint-6'}", *augment)
    )
    uninterrupted, continued = losses_from_log(full), losses_from_log(resumed)
    assert len(uninterrupted) == 9
    assert continued[-3:] == pytest.approx(uninterrupted[-3:], rel=1e-5)


def _tiny_model(family: str, num_layers: int = 3, frontend: str = "stack"):
    from training.tiny import build_tiny_model, build_tiny_processor

    processor = build_tiny_processor()
    return build_tiny_model(processor, family=family, frontend=frontend, num_layers=num_layers)


@pytest.mark.parametrize(
    ("family", "targets"),
    [
        ("llama", {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}),
        ("phi3", {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}),
    ],
)
def test_lora_targets_exactly_the_chosen_layers(family, targets):
    model = apply_finetuning(
        _tiny_model(family), ModelArguments(finetune="lora", lora_r=4, lora_alpha=8, train_layers=[0, 2])
    )
    adapted = {name.removesuffix(".lora_A") for name, _ in model.named_modules() if name.endswith(".lora_A")}
    expected = {
        f"base_model.model.language_model.model.layers.{i}.{'self_attn' if t in ('q_proj', 'k_proj', 'v_proj', 'qkv_proj', 'o_proj') else 'mlp'}.{t}"
        for i in (0, 2)
        for t in targets
    }
    assert adapted == expected
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert all(".lora_" in name or "modules_to_save" in name for name in trainable)
    # The stack front end has only buffers (the normalisation statistics); wrapping it still saves them.
    assert type(model.base_model.model.audio_frontend).__name__ == "ModulesToSaveWrapper"
    assert any("multi_modal_projector.modules_to_save" in name for name in trainable)
    assert not any("layers.1." in name for name in trainable)


def test_full_finetune_of_a_layer_range_freezes_the_others():
    model = apply_finetuning(_tiny_model("qwen2"), ModelArguments(finetune="full", train_layers=[0]))
    for name, parameter in model.named_parameters():
        if ".layers.1." in name or ".layers.2." in name:
            assert not parameter.requires_grad, name
        if ".layers.0." in name or name.startswith(("audio_frontend", "multi_modal_projector")):
            assert parameter.requires_grad, name
    with pytest.raises(ValueError, match=r"train_layers=\[5\] must index the backbone's 3 layers"):
        apply_finetuning(_tiny_model("qwen2"), ModelArguments(train_layers=[5]))


def test_frontend_only_freezes_the_llm():
    model = apply_finetuning(_tiny_model("llama", frontend="conv"), ModelArguments(finetune="frontend"))
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"audio_frontend", "multi_modal_projector"}


def test_lora_run_saves_merged_and_unmerged_models_that_agree(small_manifests, tmp_path):
    from transformers import AutoModel, AutoProcessor

    from training.train import main

    main(run_args(small_manifests, tmp_path, "--max_steps=6", "--finetune=lora", "--lora_r=4", "--lora_alpha=8"))
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    merged = AutoModel.from_pretrained(tmp_path, trust_remote_code=True)
    unmerged = load_unmerged(tmp_path)
    processor = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    rows = read_manifest(small_manifests[1])[:2]
    from processing import load_audio

    inputs = processor(audio=[load_audio(str(r.audio_path), 16_000) for r in rows], sampling_rate=16_000)
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, unmerged(**inputs).logits, atol=1e-4, rtol=1e-4)
    base = AutoModel.from_pretrained(tmp_path / "base", trust_remote_code=True)
    with torch.no_grad():
        assert not torch.allclose(base(**inputs).logits, merged(**inputs).logits)


def test_a_run_ends_its_process_group(small_manifests, tmp_path):
    """A rank left with a live gloo group at exit can abort (what made the 2-process test below fail 2 runs in 5)."""
    from training.train import main

    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        main(run_args(small_manifests, tmp_path / "run", "--max_steps=1", "--eval_max_samples=0"))
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_two_process_cpu_ddp_sees_different_data(small_manifests, tmp_path):
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "training.train",
        *run_args(small_manifests, tmp_path, "--max_steps=2", "--record_sample_ids"),
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    seen = []
    for rank in (0, 1):
        lines = (tmp_path / f"sample_ids_rank{rank}.txt").read_text().split("\n")
        seen.append([set(map(int, line.split())) for line in lines if line])
    assert len(seen[0]) == len(seen[1]) == 2
    for step in range(2):
        assert seen[0][step].isdisjoint(seen[1][step])
    assert (tmp_path / "config.json").exists()


def test_manifest_errors_name_the_line(tmp_path):
    clip = str(FSDD_DIR / read_fsdd_manifest()[0]["path"])
    cases = {
        "missing file": (
            [{"path": clip, "transcript": "zero"}, {"path": "nope.wav", "transcript": "one"}],
            ":2 points to a missing audio file",
        ),
        "empty transcript": ([{"path": clip, "transcript": "  "}], ":1 has an empty transcript"),
        "no text field": ([{"path": clip}], ":1 lacks the 'path' or 'transcript' field"),
    }
    for name, (rows, message) in cases.items():
        manifest = tmp_path / f"{name.replace(' ', '_')}.jsonl"
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
        with pytest.raises(ValueError, match=message):
            read_manifest(manifest)


def test_extra_manifests_join_training_but_not_the_held_out_sets(small_manifests):
    from training.arguments import DataArguments
    from training.corpus.corpora import load_training_data

    train, test = small_manifests
    base = DataArguments(corpus="manifest", train_manifest=str(train), eval_manifest=str(test))
    plain = load_training_data(base, AugmentConfig(), seed=0)
    mixed = load_training_data(replace(base, extra_train_manifests=[str(test)]), AugmentConfig(), seed=0)
    assert (len(plain.train), len(mixed.train)) == (16, 24)
    assert mixed.train_texts == plain.train_texts + [u.text for u in read_manifest(test)]
    assert mixed.train[23]["text"] == read_manifest(test)[-1].text
    assert {k: len(v) for k, v in mixed.wer_sets.items()} == {k: len(v) for k, v in plain.wer_sets.items()}
    hub = DataArguments(corpus="hub", dataset_name="x", extra_train_manifests=[str(test)])
    with pytest.raises(ValueError, match="extra_train_manifests"):
        load_training_data(hub, AugmentConfig(), seed=0)


def test_augmentation_is_seeded_and_does_what_it_says():
    audio = (0.3 * np.sin(np.linspace(0, 2000, 16_000))).astype(np.float32)
    config = AugmentConfig(speed_perturb=(1.1,), gain_db=6.0, noise_snr_db=10.0, probability=1.0)
    a = augment_waveform(audio, example_rng(0, 0, 5), config, 16_000)
    b = augment_waveform(audio, example_rng(0, 0, 5), config, 16_000)
    c = augment_waveform(audio, example_rng(0, 1, 5), config, 16_000)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert abs(len(a) - 16_000 / 1.1) < 5
    untouched = [
        augment_waveform(audio, example_rng(0, 0, i), AugmentConfig(gain_db=6.0, probability=0.5), 16_000)
        for i in range(200)
    ]
    clean_share = np.mean([np.array_equal(u, audio) for u in untouched])
    assert 0.35 < clean_share < 0.65  # about half the examples stay as they were
    features = torch.zeros(100, 80)
    features[:90] = torch.arange(80.0)  # each bin's mean is its index
    original = features.clone()
    spec_augment(features, 90, np.random.default_rng(0), AugmentConfig(spec_time_masks=2, spec_freq_masks=2))
    assert torch.equal(features, original)  # masks write each bin's mean, which equals every value here
    noisy = torch.randn(100, 80) + 8.0
    masked = noisy.clone()
    spec_augment(masked, 90, np.random.default_rng(1), AugmentConfig(spec_time_masks=2, spec_time_mask_frames=30))
    rows = (masked != noisy).any(-1)
    assert rows.any()
    torch.testing.assert_close(masked[rows], noisy[:90].mean(0).expand(int(rows.sum()), 80))


def test_word_crops_keep_a_run_of_words_with_its_own_audio(tmp_path):
    """A crop keeps consecutive words and exactly their stretch of audio, from a seeded stream of its own; the
    dataset applies it to the share asked for, and word times follow the crop."""
    rate = 16_000
    starts = [0.0, 0.5, 1.0, 1.8, 2.4]
    audio = np.zeros(3 * rate, dtype=np.float32)
    for word, (begin, end) in enumerate(itertools.pairwise([*starts, 3.0])):
        audio[int(begin * rate) : int(end * rate)] = word + 1
    text = "one two three four five"
    config = AugmentConfig(word_crop_probability=1.0, word_crop_max_words=3)
    for seed in range(20):
        cropped, words, times = crop_to_words(
            audio.astype(np.float32), text, starts, np.random.default_rng(seed), config, rate
        )
        kept = text.split().index(words.split()[0])
        assert 1 <= len(words.split()) <= 3
        assert " ".join(text.split()[kept : kept + len(words.split())]) == words
        assert sorted(set(cropped.tolist())) == list(
            range(kept + 1, kept + 1 + len(words.split()))
        )  # their audio only
        assert times == pytest.approx([t - starts[kept] for t in starts[kept : kept + len(times)]])
    never = AugmentConfig(word_crop_probability=0.0)
    assert crop_to_words(audio, text, starts, np.random.default_rng(0), never, rate)[1] == text
    with pytest.raises(ValueError, match="word_crop_probability"):
        AugmentConfig(word_crop_probability=1.5)

    path = tmp_path / "clip.wav"
    soundfile.write(path, (0.5 * np.sin(np.linspace(0, 6000, 3 * rate))).astype(np.float32), rate)
    utterance = Utterance(path, text, 1, {"word_starts": starts})
    dataset = SpeechTextDataset([utterance] * 200, AugmentConfig(word_crop_probability=0.5), seed=0)
    texts = [dataset[i]["text"] for i in range(200)]
    assert 0.35 < np.mean([t != text for t in texts]) < 0.65
    assert texts == [dataset[i]["text"] for i in range(200)]  # seeded
    example = next(dataset[i] for i in range(200) if dataset[i]["text"] != text)
    assert len(example["word_starts"]) == len(example["text"].split())
    assert example["word_starts"][0] == 0.0


def test_streaming_datasets_source_trains(small_manifests, tmp_path, monkeypatch):
    """A `datasets` parquet source read with streaming=True and Audio(decode=False): no FFmpeg, no download."""
    from datasets import Audio, Dataset

    from training.train import main

    rows = read_manifest(small_manifests[0])
    table = Dataset.from_dict(
        {"audio": [{"bytes": r.audio_path.read_bytes(), "path": None} for r in rows], "text": [r.text for r in rows]}
    ).cast_column("audio", Audio(decode=False))
    parquet = tmp_path / "speech.parquet"
    table.to_parquet(str(parquet))
    files = json.dumps({"train": str(parquet), "test": str(parquet)})
    args = run_args(small_manifests, tmp_path / "run", "--max_steps=3", "--eval_max_samples=4")
    args = [a for a in args if not a.startswith(("--corpus", "--train_manifest", "--eval_manifest"))]
    env_cache = {"MEL_LLM_CACHE": str(tmp_path / "cache")}
    old = {k: os.environ.get(k) for k in env_cache}
    os.environ.update(env_cache)
    try:
        results = main(
            [*args, "--corpus=hub", "--dataset_name=parquet", f"--dataset_data_files={files}", "--streaming"]
        )
    finally:
        for key, value in old.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    assert results["sets"]["parquet_test"]["n"] == 4
    assert len(losses_from_log(tmp_path / "run")) == 3


@pytest.mark.parametrize("family", ["llama", "qwen2", "phi3"])
def test_packed_batches_give_the_padded_loss_and_gradients(processor, make_model, family):
    from training.data import pack_batch

    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (64_000, 3_000, 9_000, 2_500, 5_000)]
    texts = ["one two three four", "nine", "zero four", "five", "six seven"]
    padded = processor(audio=clips, sampling_rate=16_000, text_target=texts)
    packed = pack_batch(padded, processor.tokenizer.pad_token_id)
    assert packed["input_ids"].shape[1] == padded["input_ids"].shape[1]  # no row outgrows the longest example
    assert packed["input_ids"].shape[0] < len(clips)
    assert (packed["labels"] != -100).sum() == (padded["labels"] != -100).sum()
    assert "attention_mask" not in packed

    model = make_model(family).train()
    gradients = []
    for batch in (padded, packed):
        loss = model(**batch).loss
        loss.backward()
        gradients.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
        model.zero_grad()
    (padded_loss, padded_grads), (packed_loss, packed_grads) = gradients
    torch.testing.assert_close(packed_loss, padded_loss, atol=1e-5, rtol=1e-5)
    for packed_grad, padded_grad in zip(packed_grads, padded_grads, strict=True):
        torch.testing.assert_close(packed_grad, padded_grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["llama", "qwen2", "phi3"])
def test_label_logits_only_gives_the_full_heads_loss_and_gradients(processor, make_model, family):
    from training.data import pack_batch

    rng = np.random.default_rng(1)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (24_000, 3_000, 9_000)]
    padded = processor(audio=clips, sampling_rate=16_000, text_target=["one two three", "nine", "zero four"])
    packed = pack_batch(padded, processor.tokenizer.pad_token_id)
    model = make_model(family).train()
    for batch, extra in ((padded, {}), (packed, {"num_items_in_batch": torch.tensor(7)})):
        results = []
        for label_logits_only in (False, True):
            model.label_logits_only = label_logits_only
            output = model(**batch, **extra)
            output.loss.backward()
            results.append((output, [p.grad.clone() for p in model.parameters()]))
            model.zero_grad()
        (full, full_grads), (sparse, sparse_grads) = results
        assert full.logits is not None
        assert sparse.logits is None
        torch.testing.assert_close(sparse.loss, full.loss, atol=1e-6, rtol=1e-5)
        for sparse_grad, full_grad in zip(sparse_grads, full_grads, strict=True):
            torch.testing.assert_close(sparse_grad, full_grad, atol=1e-6, rtol=1e-4)
    model.eval()  # evaluation and generation keep the full logits
    assert model(**padded).logits.shape[:2] == padded["input_ids"].shape
    model.train()
    model.config.text_config.final_logit_softcapping = 30.0  # a head that path would bypass: the full forward runs
    assert model(**padded).logits is not None


def test_packing_refuses_tts(small_manifests, tmp_path, processor):
    from training.data import pack_batch
    from training.train import main

    tts_batch = processor.tts_inputs(["one"], audio=[np.zeros(8000, np.float32)], sampling_rate=16_000)
    with pytest.raises(ValueError, match="ASR batches only"):
        pack_batch(dict(tts_batch), processor.tokenizer.pad_token_id)
    with pytest.raises(ValueError, match="pack_sequences packs ASR rows only"):
        main(run_args(small_manifests, tmp_path, "--max_steps=1", "--pack_sequences", "--tts_head", "--tts_ratio=0.5"))


def test_a_packed_run_logs_the_padded_runs_losses(small_manifests, tmp_path):
    from training.train import main

    for name, extra in (("padded", ()), ("packed", ("--pack_sequences",))):
        main(run_args(small_manifests, tmp_path / name, "--max_steps=3", "--eval_max_samples=2", *extra))
    assert losses_from_log(tmp_path / "packed") == pytest.approx(losses_from_log(tmp_path / "padded"), rel=1e-4)


@pytest.mark.parametrize("frontend", ["conv", "encoder"])
def test_audio_sizes_from_the_config_reach_the_model(frontend):
    from training.train import build_processor_and_model

    args = ModelArguments(
        frontend=frontend, conv_channels=16, conv_output_size=24, conformer_layers=1, conformer_ffn_dim=48
    )
    _, model = build_processor_and_model(args, ["one two three", "four five"])
    assert (model.config.conv_channels, model.config.conv_output_size) == (16, 24)
    assert model.audio_frontend.subsampling.out.out_features == 24
    if frontend == "encoder":
        assert (model.config.conformer_layers, model.config.conformer_ffn_dim) == (1, 48)


def test_the_recipe_tokenizer_learns_the_prompts():
    """The instructions are in every example, so the tiny tokenizer must not spell them out byte by byte."""
    from processing import ASR_INSTRUCTION, TTS_INSTRUCTION
    from training.train import build_processor_and_model

    texts = ["one two three", "turn the heater on", "the red ball is big"] * 50
    processor, _ = build_processor_and_model(ModelArguments(tiny_vocab_size=400, tts_head=True), texts)
    for instruction in (ASR_INSTRUCTION, TTS_INSTRUCTION):
        assert len(processor.tokenizer(instruction, add_special_tokens=False)["input_ids"]) <= 8


def test_label_smoothing_scores_each_position_against_the_next_token(processor, make_model, tmp_path):
    """Trainer shifts labels before smoothing only for its own causal-LM classes; MelLLMTrainer must shift them too."""
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_pt_utils import LabelSmoother

    from training.label_smoothing import ShiftedLabelSmoother
    from training.train import MelLLMTrainer

    model = make_model().train()
    rng = np.random.default_rng(2)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (12_000, 4_000)]
    batch = dict(processor(audio=clips, sampling_rate=16_000, text_target=["one two", "nine"]))
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    expected = LabelSmoother(epsilon=0.1)({"logits": logits[:, :-1]}, batch["labels"][:, 1:])
    args = TrainingArguments(output_dir=str(tmp_path), label_smoothing_factor=0.1, use_cpu=True, report_to="none")
    ours = MelLLMTrainer(model=model, args=args, processing_class=processor)
    torch.testing.assert_close(ours.compute_loss(model, dict(batch)), expected)
    plain = Trainer(model=model, args=args, compute_loss_func=ShiftedLabelSmoother(0.1))
    torch.testing.assert_close(plain.compute_loss(model, dict(batch)), expected)
    with pytest.raises(ValueError, match="epsilon"):
        ShiftedLabelSmoother(1.5)


def test_label_smoothing_refuses_tts_rows(small_manifests, tmp_path):
    from training.train import main

    with pytest.raises(ValueError, match="label_smoothing_factor smooths the text loss only"):
        main(
            run_args(
                small_manifests,
                tmp_path,
                "--max_steps=1",
                "--tts_head",
                "--tts_ratio=0.5",
                "--label_smoothing_factor=0.1",
            )
        )
