"""Train a Mel-LLM with `transformers.Trainer`: parse → build model/processor → PEFT → Trainer.train → save.

    python -m training.train training/configs/tiny_cpu.yaml [--key=value ...]
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no -m training.train training/configs/tiny_cpu.yaml          # 2-process CPU DDP
    accelerate launch --config_file training/configs/accelerate/fsdp.yaml -m training.train CONFIG --bf16=true

The output folder is a `save_pretrained` folder (LoRA merged) that the Auto classes and
`pipeline("automatic-speech-recognition", trust_remote_code=True)` load; LoRA runs also keep `adapter/` + `base/`.
"""

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from modeling_mel_llm import MelLLMConfig, MelLLMForSpeechLM
from processing import ASR_INSTRUCTION, TTS_INSTRUCTION, MelLLMFeatureExtractor, MelLLMProcessor
from processing.espeak_mel_llm import phonemize_words
from training.arguments import DataArguments, ModelArguments, parse_config
from training.augment import AugmentConfig
from training.corpus.corpora import TrainingData, load_training_data
from training.data import MelLLMDataCollator
from training.evaluation.eval_asr import evaluate_sets, write_reports
from training.finetuning import apply_finetuning, save_trained_model
from training.label_smoothing import ShiftedLabelSmoother
from training.scheduled_sampling import mix_in_own_predictions
from training.smollm2 import resolve_text_model
from training.tesu import run_tesu
from training.tiny import DEFAULT_CORPUS, build_tiny_model, build_tokenizer
from training.training_log import write_training_log


class MelLLMTrainer(Trainer):
    """Trainer whose evaluation also transcribes held-out audio and logs WER/CER (teacher-forced loss alone
    says little about recognition), and whose TTS batches can use scheduled sampling."""

    def __init__(
        self,
        *args,
        wer_sets: dict | None = None,
        generate_kwargs: dict | None = None,
        tts_scheduled_sampling: float = 0.0,
        latent_stage1_steps: int = 0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.latent_stage1_steps = latent_stage1_steps  # two_stage MELD: the discrete autoencoder's steps
        if self.label_smoother is not None and self.compute_loss_func is None:  # Trainer would not shift the labels
            self.compute_loss_func = ShiftedLabelSmoother(self.args.label_smoothing_factor)
        self.wer_sets, self.generate_kwargs = wer_sets or {}, generate_kwargs or {}
        self.tts_scheduled_sampling = tts_scheduled_sampling

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """With `tts_scheduled_sampling` > 0, TTS rows read a mix of recorded and self-predicted patches; in stage 1
        of two_stage MELD training only the discrete autoencoder learns, from the batch's audio."""
        if self.latent_stage1_steps and model.training:
            mel_llm = self._mel_llm(model)
            if self.state.global_step < self.latent_stage1_steps:
                loss = stage1_loss(mel_llm, inputs)
                return (loss, {"loss": loss}) if return_outputs else loss
            if mel_llm.speech_latent.codebook.requires_grad:  # the first stage-2 step (also after a resume)
                mel_llm.speech_latent.freeze_autoencoder()
        if self.tts_scheduled_sampling > 0 and model.training and inputs.get("mel_targets") is not None:
            mel_llm = self._mel_llm(model)
            inputs = {**inputs, "mel_inputs": mix_in_own_predictions(mel_llm, inputs, self.tts_scheduled_sampling)}
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _mel_llm(self, model) -> MelLLMForSpeechLM:
        """The MelLLMForSpeechLM inside whatever wraps it for training (DDP, a PEFT adapter)."""
        unwrapped = self.accelerator.unwrap_model(model)
        return unwrapped.get_base_model() if hasattr(unwrapped, "get_base_model") else unwrapped

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix) if self.eval_dataset else {}
        if self.wer_sets:
            model = self._mel_llm(self.model)
            report = evaluate_sets(
                model,
                self.processing_class,
                self.wer_sets,
                self.args.per_device_eval_batch_size,
                warmup=False,
                **self.generate_kwargs,
            )
            wer_metrics = {f"{metric_key_prefix}_wer": report["average_wer"]}
            for name, result in report["sets"].items():
                wer_metrics[f"{metric_key_prefix}_{name}_cer"] = result["cer"]
            self.log(wer_metrics)
            metrics.update(wer_metrics)
            self.model.train()
        return metrics


class EpochCallback(TrainerCallback):
    """Tell the dataset which epoch it is serving, so augmentations differ per epoch yet survive a resume."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.epoch = int(state.epoch or 0)


def stage1_steps(model: MelLLMForSpeechLM, model_args: ModelArguments, training_args: TrainingArguments) -> int:
    """Steps of two_stage MELD's first stage (0 for joint training); the budget is split, not added."""
    if model_args.latent_training != "two_stage":
        return 0
    if model.speech_latent is None:
        raise ValueError(
            "latent_training='two_stage' needs discrete latents: latent_config {speech_latent: discrete}."
        )
    if training_args.world_size > 1 or training_args.max_steps < 2:
        raise ValueError("latent_training='two_stage' runs on one process with max_steps >= 2 (stage 1 trains no LM).")
    return max(1, int(model_args.latent_stage1_fraction * training_args.max_steps))


def stage1_loss(model: MelLLMForSpeechLM, inputs: dict) -> torch.Tensor:
    """The discrete autoencoder's loss on every clip of the batch: ASR rows' input audio and TTS rows' targets."""
    pairs = (("input_features", "input_features_mask"), ("mel_targets", "mel_target_mask"))
    clips = [(inputs[f], inputs[m]) for f, m in pairs if inputs.get(f) is not None and inputs.get(m) is not None]
    losses = []
    for frames, mask in clips:
        rows = mask.bool().any(-1)
        if rows.any():
            cmvn = model.audio_frontend.norm(frames[rows].to(model.dtype))
            losses.append(
                model.speech_latent.autoencoder_loss(cmvn, mask[rows].bool(), model.latent_training.weights)[0]
            )
    return torch.stack(losses).mean()


class LatentTemperatureCallback(TrainerCallback):
    """Anneal the discrete path's Gumbel temperature geometrically from `start` to `end` over the run's steps."""

    def __init__(self, start: float, end: float):
        if start <= 0 or end <= 0:
            raise ValueError(f"latent_temperature must be positive, got [{start}, {end}].")
        self.start, self.end = start, end

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        latent_training = getattr(model, "latent_training", None)  # PEFT wrappers forward attributes
        if latent_training is not None:
            progress = state.global_step / max(1, state.max_steps)
            latent_training.temperature = self.start * (self.end / self.start) ** progress


def tts_layout(model_args: ModelArguments) -> dict:
    """How a new processor lays out TTS rows (unset flags: the defaults)."""
    return {
        "tts_interleave_words": bool(model_args.tts_interleave_words),
        "tts_text_units": model_args.tts_text_units or "tokens",
    }


def audio_sizes(model_args: ModelArguments) -> dict:
    """The audio-path sizes the recipe sets; unset ones keep their owner's default (config, or tiny.py)."""
    names = ("conv_channels", "conv_output_size", "conformer_layers", "conformer_attention_heads", "conformer_ffn_dim")
    sizes = {name: getattr(model_args, name) for name in names if getattr(model_args, name) is not None}
    return {**sizes, **(model_args.latent_config or {}), **(model_args.unified_config or {})}


def build_processor_and_model(
    model_args: ModelArguments, train_texts: list[str]
) -> tuple[MelLLMProcessor, MelLLMForSpeechLM]:
    """From a trained Mel-LLM, from a Hub/local causal LM (+ optional GGUF), or a tiny LM from scratch; a unified
    (TESU) model's processor learns its units."""
    processor, model = _build_processor_and_model(model_args, train_texts)
    if model.config.frontend == "unified" and processor.unit_vocabulary is None:
        processor.speech_units, processor.unit_vocabulary = model.config.units, list(model.config.unit_vocabulary)
    return processor, model


def _build_processor_and_model(
    model_args: ModelArguments, train_texts: list[str]
) -> tuple[MelLLMProcessor, MelLLMForSpeechLM]:
    if model_args.init_from:
        processor = MelLLMProcessor.from_pretrained(model_args.init_from)
        for name in ("tts_interleave_words", "tts_text_units"):
            if getattr(model_args, name) not in (None, getattr(processor, name)):
                raise ValueError(
                    f"{model_args.init_from} has {name}={getattr(processor, name)}, and its model learned that "
                    f"layout; --{name}={getattr(model_args, name)} needs a new model."
                )
        config = MelLLMConfig.from_pretrained(model_args.init_from)
        if model_args.tts_head:  # an ASR model learns to speak (only the head starts fresh), or tts_* settings change
            config = config.with_tts_head(**(model_args.tts_config or {}))
        return processor, MelLLMForSpeechLM.from_pretrained(model_args.init_from, config=config)
    feature_extractor = MelLLMFeatureExtractor(frames_per_patch=model_args.frames_per_patch)
    audio_kwargs = audio_sizes(model_args)
    tts_fields = {"tts_head": True, **(model_args.tts_config or {})} if model_args.tts_head else {}
    if model_args.text_model:
        text_model_path, gguf_file = resolve_text_model(model_args.text_model, model_args.gguf_file)
        load_kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(text_model_path, **load_kwargs)
        processor = MelLLMProcessor.from_text_tokenizer(tokenizer, feature_extractor, **tts_layout(model_args))
        text_model = AutoModelForCausalLM.from_pretrained(
            text_model_path, attn_implementation=model_args.attn_implementation, **load_kwargs
        )
        return processor, MelLLMForSpeechLM.from_text_model(
            text_model, processor, frontend=model_args.frontend, **audio_kwargs, **tts_fields
        )
    # The instructions go in as often as every example carries them, so BPE merges them into a few tokens
    # (spelled out letter by letter, the ASR prompt took 21 of a typical row's ~60 tokens).
    prompts = [ASR_INSTRUCTION, *([TTS_INSTRUCTION] if model_args.tts_head else [])] * len(train_texts)
    pronunciations = (
        [" ".join(phonemize_words(t)) for t in train_texts] if model_args.tts_text_units == "phonemes" else []
    )
    tokenizer = build_tokenizer(
        [*DEFAULT_CORPUS, *train_texts, *pronunciations, *prompts], vocab_size=model_args.tiny_vocab_size
    )
    processor = MelLLMProcessor.from_text_tokenizer(tokenizer, feature_extractor, **tts_layout(model_args))
    model = build_tiny_model(
        processor,
        family=model_args.tiny_family,
        hidden_size=model_args.tiny_hidden_size,
        num_layers=model_args.tiny_num_layers,
        num_heads=model_args.tiny_num_heads,
        num_kv_heads=max(1, model_args.tiny_num_heads // 2),
        frontend=model_args.frontend,
        audio_overrides=audio_kwargs,
        tts_head=tts_fields or False,
    )
    return processor, model


def augment_config(data_args: DataArguments) -> AugmentConfig:
    return AugmentConfig(
        speed_perturb=tuple(data_args.speed_perturb) if data_args.speed_perturb else None,
        gain_db=data_args.gain_db,
        noise_snr_db=data_args.noise_snr_db,
        spec_time_masks=data_args.spec_time_masks,
        spec_time_mask_frames=data_args.spec_time_mask_frames,
        spec_freq_masks=data_args.spec_freq_masks,
        spec_freq_mask_bins=data_args.spec_freq_mask_bins,
        probability=data_args.augment_probability,
        word_crop_probability=data_args.word_crop_probability,
        word_crop_max_words=data_args.word_crop_max_words,
    )


def fit_normalization(model: MelLLMForSpeechLM, processor: MelLLMProcessor, data: TrainingData, clips: int = 256):
    """Global mean/std of log-mel from up to `clips` training examples (a new model has none)."""
    sample = [data.train[i]["audio"] for i in range(0, len(data.train), max(1, len(data.train) // clips))]
    features = processor.feature_extractor(sample[:clips], sampling_rate=16_000)
    model.fit_feature_normalization(features["input_features"], features["input_features_mask"])


@dataclass
class Run:
    """Everything `main` trains and saves; `build_run` makes it (benchmarks instrument it before training)."""

    trainer: MelLLMTrainer
    processor: MelLLMProcessor
    model_args: ModelArguments
    data_args: DataArguments
    training_args: TrainingArguments
    data: TrainingData


def build_run(argv: list[str], extra_callbacks: tuple[TrainerCallback, ...] = ()) -> Run:
    """Parse the config, build data, processor and model, choose what trains, and wrap it all in a Trainer."""
    model_args, data_args, training_args = parse_config(argv)
    if not 0.0 <= data_args.tts_ratio <= 1.0:
        raise ValueError(f"tts_ratio must be within [0, 1], got {data_args.tts_ratio}.")
    set_seed(training_args.seed)
    augment = augment_config(data_args)
    data = load_training_data(data_args, augment, seed=training_args.seed)
    processor, model = build_processor_and_model(model_args, data.train_texts)
    if data_args.tts_ratio > 0 and not model.config.tts_head:
        raise ValueError("tts_ratio > 0 needs a model with a mel head: set tts_head: true (or init_from one).")
    if training_args.label_smoothing_factor > 0 and data_args.tts_ratio > 0:
        raise ValueError("label_smoothing_factor smooths the text loss only; it cannot be combined with tts_ratio.")
    if data_args.pack_sequences and data_args.tts_ratio > 0:
        raise ValueError("pack_sequences packs ASR rows only: it cannot be combined with tts_ratio.")
    if model_args.tts_scheduled_sampling > 0 and not model.config.tts_head:
        raise ValueError("tts_scheduled_sampling needs a model with a mel head (tts_head: true, or init_from one).")
    model.tts_loss_weights, model.latent_training = model_args.loss_weights(), model_args.latent_objective()
    model.label_logits_only = model_args.label_logits_only
    if not model_args.init_from and data.has_length:
        fit_normalization(model, processor, data)
    if model_args.finetune == "lora" and training_args.process_index == 0:
        model.save_pretrained(Path(training_args.output_dir) / "base")  # what the unmerged adapter applies to
        processor.save_pretrained(Path(training_args.output_dir) / "base")
    callbacks = [
        EpochCallback(data.train),
        LatentTemperatureCallback(*model_args.latent_temperature),
        *extra_callbacks,
    ]
    model = apply_finetuning(model, model_args)

    collator = MelLLMDataCollator(
        processor, augment, tts_ratio=data_args.tts_ratio, pack_sequences=data_args.pack_sequences
    )
    if data_args.record_sample_ids:
        collator = _RecordingCollator(collator, Path(training_args.output_dir), training_args.process_index)
    trainer = MelLLMTrainer(
        model=model,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=data.eval_loss,
        data_collator=collator,
        processing_class=processor,
        callbacks=callbacks,
        wer_sets=data.wer_sets,
        generate_kwargs=eval_generate_kwargs(data_args),
        tts_scheduled_sampling=model_args.tts_scheduled_sampling,
        latent_stage1_steps=stage1_steps(model, model_args, training_args),
    )
    return Run(trainer, processor, model_args, data_args, training_args, data)


def is_unified(model_args: ModelArguments) -> bool:
    """A TESU run (training/tesu.py): `frontend: unified`, or init_from a unified model."""
    if model_args.init_from:
        return MelLLMConfig.from_pretrained(model_args.init_from).frontend == "unified"
    return model_args.frontend == "unified"


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    try:
        model_args, data_args, training_args = parse_config(argv)
        if is_unified(model_args):
            return run_tesu(model_args, data_args, training_args, argv)
        return train_and_report(build_run(argv), argv)
    finally:
        # Under `accelerate launch` every rank but 0 is done here, minutes before rank 0; left to interpreter exit,
        # its gloo process group could abort the process ("terminate called without an active exception").
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def train_and_report(run: Run, argv: list[str]) -> dict:
    """Train; then, on rank 0 only, save the model, the run's settings, its held-out WER reports and training log."""
    trainer, processor, training_args = run.trainer, run.processor, run.training_args
    train_output = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    output_dir = Path(training_args.output_dir)
    if not trainer.is_world_process_zero():
        return {}
    final_model = save_trained_model(trainer.model, processor, output_dir)
    config = {
        "model": vars(run.model_args),
        "data": vars(run.data_args),
        "training": training_args.to_sanitized_dict(),
        "train_runtime_s": round(train_output.metrics["train_runtime"], 1),
        "num_parameters": parameter_counts(final_model),
    }
    Path(output_dir, "run_config.yaml").write_text(yaml.safe_dump(config))
    results = {}
    if run.data.wer_sets:
        final_model.eval()
        with torch.inference_mode():
            results = evaluate_sets(
                final_model,
                processor,
                run.data.wer_sets,
                training_args.per_device_eval_batch_size,
                **eval_generate_kwargs(run.data_args),
            )
        command = shlex.join(["python", "-m", "training.train", *argv])
        write_reports(results, output_dir, model_path=str(output_dir), command=command)
        for name, scores in results["sets"].items():
            print(f"WER on held-out {name}: {scores['wer']:.2f}% (CER {scores['cer']:.2f}%, {scores['n']} utterances)")
        if len(results["sets"]) > 1:
            print(f"average WER over the {len(results['sets'])} held-out sets: {results['average_wer']:.2f}%")
    write_training_log(trainer.state.log_history, output_dir)
    return results


def eval_generate_kwargs(data_args: DataArguments) -> dict:
    """How held-out sets are transcribed, during training and at its end alike."""
    return {"max_new_tokens": data_args.eval_max_new_tokens, "num_beams": data_args.eval_num_beams}


def parameter_counts(model: MelLLMForSpeechLM) -> dict[str, int]:
    """Audio path (front end + projector), LLM, and total: what the front-end comparisons set side by side."""
    return {
        "audio": model.frontend_parameter_counts()["total"],
        "llm": model.language_model.num_parameters(),
        "total": model.num_parameters(),
    }


class _RecordingCollator:
    """Appends the example ids of every batch this rank trains on to `sample_ids_rank{N}.txt` (for DDP checks)."""

    def __init__(self, collator, folder: Path, rank: int):
        self.collator, self.path = collator, folder / f"sample_ids_rank{rank}.txt"
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, examples: list[dict]) -> dict:
        with open(self.path, "a") as f:
            f.write(" ".join(str(example["id"]) for example in examples) + "\n")
        return self.collator(examples)


if __name__ == "__main__":
    main()
