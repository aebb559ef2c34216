"""Train a TESU-LLM (`frontend: unified`, issue 23): the encoder on paired audio, then the LLM side on text alone.

    python -m training.train training/configs/tesu_fsdd.yaml [--tesu_stage=encoder|text_only] [--key=value ...]

Stage `encoder`: the unified encoder learns CTC over units from paired clips (with `shared_space: hidden`, its text
encoder also learns to give the speech encoder's merged states); the LLM is untouched. Stage `text_only`: the
encoder frozen, the unit embeddings, projector and LLM (full or LoRA) learn from generated text spelled into units
and roughened to look like merged speech (training/text_as_speech.py). One call runs both, splitting `max_steps`
(`tesu_encoder_steps` go to the encoder), or one stage alone. `training_summary.json` says what each stage consumed,
including the audio seconds that reached the LLM's forward, counted by a hook (0: it learned from text only).
"""

import dataclasses
import itertools
import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainingArguments, set_seed

from modeling_mel_llm import MelLLMForSpeechLM
from modeling_mel_llm.configuration_mel_llm import FRAME_SECONDS
from processing import MelLLMProcessor
from processing.text_normalization_mel_llm import cardinal
from training.arguments import DataArguments, ModelArguments
from training.augment import AugmentConfig, spec_augment
from training.corpus.corpora import TrainingData, load_training_data
from training.corpus.open_text import load_open_sentences, transcript
from training.data import Utterance
from training.evaluation.eval_asr import evaluate_sets, load_clip, transcribe_batch, write_reports
from training.evaluation.text_normalizer import normalize_english
from training.finetuning import apply_finetuning, save_trained_model
from training.text_as_speech import (
    ARITHMETIC_INSTRUCTION,
    GeneratedTextDataset,
    TextAsSpeechCollator,
    TextPathSimulation,
)
from training.tiny import DIGIT_WORDS
from training.training_log import write_training_log


TESU_STAGES = ("both", "encoder", "text_only")
ARITHMETIC_PAIRS = 100  # spoken sums scored per held-out digit speaker
ARITHMETIC_GAP_S = 0.15  # silence between the two digits of a spoken sum


@dataclass
class StageBudget:
    """Optimizer steps of each stage: the run's `max_steps`, split between the stages that run, never added."""

    encoder: int
    text_only: int

    @classmethod
    def of(cls, model_args: ModelArguments, max_steps: int) -> "StageBudget":
        stage = model_args.tesu_stage
        if stage not in TESU_STAGES:
            raise ValueError(f"tesu_stage={stage!r}; choose one of {TESU_STAGES}.")
        if max_steps < 1:
            raise ValueError("frontend=unified trains by steps: set max_steps.")
        if stage == "encoder":
            return cls(max_steps, 0)
        if stage == "text_only":
            if not model_args.init_from:
                raise ValueError("tesu_stage=text_only needs init_from: a unified model whose encoder is trained.")
            return cls(0, max_steps)
        if not 0 < model_args.tesu_encoder_steps < max_steps:
            raise ValueError(
                f"tesu_stage=both splits max_steps={max_steps}: tesu_encoder_steps must be within (0, max_steps), got "
                f"{model_args.tesu_encoder_steps}."
            )
        return cls(model_args.tesu_encoder_steps, max_steps - model_args.tesu_encoder_steps)


class AudioSecondsCounter:
    """Seconds of audio passed to the model's forward (the LLM side) while training: a forward pre-hook."""

    def __init__(self, model: torch.nn.Module):
        self.seconds = 0.0
        self.handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs) -> None:
        mask = kwargs.get("input_features_mask")
        if module.training and kwargs.get("input_features") is not None:
            frames = mask.sum() if mask is not None else kwargs["input_features"].shape[:2].numel()
            self.seconds += float(frames) * FRAME_SECONDS


@dataclass
class UnitCTCCollator:
    """Paired clips → log-mel, their transcripts' unit ids (`unit_labels`, -100 padded), and one-hot posteriors of
    those units (for the `hidden` space's matching). Counts the audio seconds the encoder stage consumes."""

    processor: MelLLMProcessor
    augment: AugmentConfig
    audio_seconds: float = 0.0

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        extractor = self.processor.feature_extractor
        batch = dict(extractor([e["audio"] for e in examples], sampling_rate=extractor.sampling_rate))
        frames = batch["input_features_mask"].sum(-1).tolist()
        if self.augment.changes_features:
            for i, example in enumerate(examples):
                spec_augment(
                    batch["input_features"][i], frames[i], np.random.default_rng(example["seed"]), self.augment
                )
        self.audio_seconds += sum(len(e["audio"]) for e in examples) / extractor.sampling_rate
        text_path = self.processor(text_as_speech=[e["text"] for e in examples])  # one-hot: the labels are its argmax
        posteriors, mask = text_path["unit_posteriors"], text_path["unit_posteriors_mask"]
        labels = posteriors.argmax(-1).masked_fill(~mask, -100)
        return {**batch, "unit_labels": labels, "unit_posteriors": posteriors, "unit_posteriors_mask": mask}


class EncoderStageTrainer(Trainer):
    """The encoder stage: CTC over units (plus, for the `hidden` space, the text encoder's match to speech)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mel_llm = self.accelerator.unwrap_model(model)
        features = inputs["input_features"].to(next(mel_llm.unified_frontend.parameters()).dtype)
        patches, patch_mask = mel_llm.audio_frontend(features, inputs["input_features_mask"].bool())
        loss = mel_llm.unified_frontend.encoder_loss(
            patches,
            patch_mask,
            inputs["unit_labels"],
            inputs["unit_posteriors"],
            inputs["unit_posteriors_mask"].bool(),
        )
        return (loss, {"loss": loss}) if return_outputs else loss

    def floating_point_ops(self, inputs: dict) -> int:
        """Trainer's 6·N·tokens estimate, for the encoder: its parameters times the batch's patches."""
        mel_llm = self.accelerator.unwrap_model(self.model)
        patches = -(-int(inputs["input_features_mask"].sum()) // mel_llm.config.frames_per_patch)
        return 6 * sum(p.numel() for p in mel_llm.unified_frontend.speech_encoder.parameters()) * patches


def freeze_for_stage(model: MelLLMForSpeechLM, stage: str) -> None:
    """Encoder stage: only the unified encoder(s) learn. Text stage: the speech encoder (and a `hidden` text encoder)
    stay as the encoder stage left them; the unit embeddings, projector and LLM learn."""
    unified = model.unified_frontend
    model.requires_grad_(stage == "text_only")
    unified.requires_grad_(stage == "encoder")
    if stage == "text_only" and unified.unit_embeddings is not None:
        unified.unit_embeddings.requires_grad_(True)


def stage_arguments(args: TrainingArguments, stage: str, steps: int, learning_rate: float | None) -> TrainingArguments:
    """The run's training arguments for one stage: its steps, folder and learning rate."""
    changes = {"max_steps": steps, "output_dir": str(Path(args.output_dir) / f"stage_{stage}")}
    if learning_rate is not None:
        changes["learning_rate"] = learning_rate
    return dataclasses.replace(args, **changes)


@dataclass
class TesuSummary:
    """What `training_summary.json` records (issue 23): the audio each side consumed, the text rows and steps."""

    llm_audio_seconds: float = 0.0
    encoder_audio_seconds: float = 0.0
    text_examples: int = 0
    optimizer_steps: dict[str, int] = field(default_factory=dict)
    flos: dict[str, float] = field(default_factory=dict)  # Trainer's 6·N·tokens estimate per stage
    per_device_train_batch_size: int = 0
    wall_seconds: float = 0.0


def hub_sentences(spec: str, limit: int) -> list[str]:
    """`hub:NAME:CONFIG:SPLIT:COLUMN` (CONFIG may be empty) → up to `limit` normalised lines of a Hub dataset's text
    column, streamed (a GPU recipe's text corpus)."""
    from datasets import load_dataset

    parts = spec.split(":")
    if len(parts) != 5:
        raise ValueError(f"tesu_text={spec!r}: write a Hub text corpus as hub:NAME:CONFIG:SPLIT:COLUMN.")
    _, name, config, split, column = parts
    rows = load_dataset(name, config or None, split=split, streaming=True)
    sentences = (transcript(row[column]) for row in rows)
    return list(itertools.islice((s for s in sentences if s), limit))


def text_rows(data_args: DataArguments, seed: int) -> GeneratedTextDataset:
    """The text-only stage's rows: digit strings, the open corpus's sentences, a text file's lines, or a Hub text
    corpus (`hub:NAME:CONFIG:SPLIT:COLUMN`)."""
    source, sentences = data_args.tesu_text, None
    if source == "open":
        source, sentences = "sentences", [transcript(s) for s in load_open_sentences()]
    elif source.startswith("hub:"):
        source, sentences = "sentences", hub_sentences(source, data_args.tesu_text_examples)
    elif source != "digits":
        if not Path(source).is_file():
            raise ValueError(f"tesu_text={source!r} is neither digits, open, nor a text file.")
        source, sentences = (
            "sentences",
            [line.strip() for line in Path(source).read_text().splitlines() if line.strip()],
        )
    return GeneratedTextDataset(data_args.tesu_text_examples, source, data_args.tesu_arithmetic_share, sentences, seed)


def tokenizer_texts(paired: TrainingData | None, texts: GeneratedTextDataset) -> list[str]:
    """What a from-scratch tokenizer learns from: the paired transcripts, text rows and the arithmetic prompt."""
    rows = [texts.example(i) for i in range(min(len(texts), 5000))]
    return [
        *(paired.train_texts if paired else []),
        *(row.target for row in rows),
        *(row.spoken for row in rows),
        *[ARITHMETIC_INSTRUCTION] * 200,
    ]


def spoken_sums(utterances: list[Utterance], rate: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """Spoken digit sums and their answers. Rows that carry an `answer` (a synthetic arithmetic set) are used as
    they are; otherwise pairs of one set's digit clips are joined by a short silence (FSDD). Either way: arithmetic
    heard as speech, which the LLM side only ever learned as text."""
    answered = [u for u in utterances if "answer" in u.metadata]
    if answered:
        return [(load_clip(u, rate), u.metadata["answer"]) for u in answered]
    by_digit = {}
    for utterance in utterances:
        if utterance.text in DIGIT_WORDS:
            by_digit.setdefault(DIGIT_WORDS.index(utterance.text), []).append(utterance)
    if len(by_digit) < 2:
        return []
    rng, digits = np.random.default_rng(seed), sorted(by_digit)
    gap = np.zeros(int(ARITHMETIC_GAP_S * rate), dtype=np.float32)
    pairs = []
    for _ in range(ARITHMETIC_PAIRS):
        a, b = (int(rng.choice(digits)) for _ in range(2))
        first, second = (by_digit[d][int(rng.integers(len(by_digit[d])))] for d in (a, b))
        pairs.append((np.concatenate([load_clip(first, rate), gap, load_clip(second, rate)]), cardinal(a + b)))
    return pairs


def arithmetic_accuracy(model, processor: MelLLMProcessor, pairs: list[tuple[np.ndarray, str]]) -> dict:
    """Exact-match accuracy (%) of the sums the model says for spoken digit pairs."""
    correct = 0
    for start in range(0, len(pairs), 16):
        chunk = pairs[start : start + 16]
        clips = [clip for clip, _ in chunk]
        answers = transcribe_batch(model, processor, clips, instruction=ARITHMETIC_INSTRUCTION, max_new_tokens=8)
        correct += sum(normalize_english(a) == normalize_english(t) for a, (_, t) in zip(answers, chunk, strict=True))
    return {"accuracy": 100.0 * correct / max(len(pairs), 1), "n": len(pairs)}


def evaluate_tesu(model, processor: MelLLMProcessor, sets: dict[str, list[Utterance]], args, data_args) -> dict:
    """WER on the transcription sets through speech; spoken-sum accuracy on the sets that allow it (an arithmetic
    set with `answer`s is scored only that way)."""
    from training.train import eval_generate_kwargs

    rate = processor.feature_extractor.sampling_rate
    transcribed = {name: rows for name, rows in sets.items() if not any("answer" in u.metadata for u in rows)}
    with torch.inference_mode():
        results = evaluate_sets(
            model, processor, transcribed, args.per_device_eval_batch_size, **eval_generate_kwargs(data_args)
        )
    results["arithmetic"] = {}
    for name, utterances in sets.items():
        pairs = spoken_sums(utterances, rate, args.seed)
        if pairs:
            results["arithmetic"][name] = arithmetic_accuracy(model, processor, pairs)
    return results


def fit_encoder_normalization(model, processor, paired: TrainingData, fit_normalization) -> None:
    """The log-mel statistics from the paired set: spread over it when it has a length, else its first clips."""
    if paired.has_length:
        fit_normalization(model, processor, paired)
        return
    clips = [example["audio"] for example in itertools.islice(iter(paired.train), 256)]
    features = processor.feature_extractor(clips, sampling_rate=processor.feature_extractor.sampling_rate)
    model.fit_feature_normalization(features["input_features"], features["input_features_mask"])


def train_stage(trainer: Trainer, args: TrainingArguments, stage: str, summary: TesuSummary) -> None:
    """Train one stage (resuming from its own checkpoint when asked); record its optimizer steps and FLOPs."""
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    summary.optimizer_steps[stage] = trainer.state.global_step
    summary.flos[stage] = float(trainer.state.total_flos)


def run_tesu(
    model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments, argv: list[str]
) -> dict:
    """Both stages (or one), then save, write training_summary.json, and score the held-out sets through speech."""
    from training.train import augment_config, build_processor_and_model, fit_normalization

    began = time.perf_counter()
    budget = StageBudget.of(model_args, training_args.max_steps)
    set_seed(training_args.seed)
    simulation = TextPathSimulation(data_args.text_smoothing_max, data_args.text_drop_rate, data_args.text_repeat_rate)
    augment = augment_config(data_args)
    paired = load_training_data(data_args, augment, seed=training_args.seed)
    texts = text_rows(data_args, training_args.seed)
    processor, model = build_processor_and_model(model_args, tokenizer_texts(paired, texts))
    if model.unified_frontend is None:
        raise ValueError("training.tesu trains frontend=unified models; set frontend: unified (or init_from one).")
    summary = TesuSummary(per_device_train_batch_size=training_args.per_device_train_batch_size)
    counter = AudioSecondsCounter(model)
    if budget.encoder:
        if not model_args.init_from:
            fit_encoder_normalization(model, processor, paired, fit_normalization)
        freeze_for_stage(model, "encoder")
        args = stage_arguments(training_args, "encoder", budget.encoder, model_args.tesu_encoder_learning_rate)
        collator = UnitCTCCollator(processor, augment)
        trainer = EncoderStageTrainer(model=model, args=args, train_dataset=paired.train, data_collator=collator)
        train_stage(trainer, args, "encoder", summary)
        summary.encoder_audio_seconds = round(collator.audio_seconds, 1)
    trained = model
    if budget.text_only:
        freeze_for_stage(model, "text_only")
        trained = apply_finetuning(model, model_args)
        args = stage_arguments(training_args, "text_only", budget.text_only, None)
        collator = TextAsSpeechCollator(processor, simulation)
        trainer = Trainer(model=trained, args=args, train_dataset=texts, data_collator=collator)
        train_stage(trainer, args, "text_only", summary)
        summary.text_examples = summary.optimizer_steps["text_only"] * training_args.per_device_train_batch_size
        write_training_log(trainer.state.log_history, Path(training_args.output_dir))
    counter.handle.remove()
    summary.llm_audio_seconds = counter.seconds
    summary.optimizer_steps["total"] = sum(summary.optimizer_steps.values())
    summary.wall_seconds = round(time.perf_counter() - began, 1)
    output_dir = Path(training_args.output_dir)
    final_model = save_trained_model(trained, processor, output_dir).eval()
    (output_dir / "training_summary.json").write_text(json.dumps(dataclasses.asdict(summary), indent=2) + "\n")
    print(f"training summary: {json.dumps(dataclasses.asdict(summary))}")
    if not (budget.text_only and paired.wer_sets):
        return {"summary": dataclasses.asdict(summary)}
    results = evaluate_tesu(final_model, processor, paired.wer_sets, training_args, data_args)
    command = shlex.join(["python", "-m", "training.train", *argv])
    write_reports(results, output_dir, model_path=str(output_dir), command=command)
    for name, scores in results["sets"].items():
        print(f"WER on held-out {name}: {scores['wer']:.2f}% (CER {scores['cer']:.2f}%, {scores['n']} utterances)")
    for name, scores in results["arithmetic"].items():
        print(f"spoken-sum accuracy on {name}: {scores['accuracy']:.1f}% ({scores['n']} pairs)")
    return {**results, "summary": dataclasses.asdict(summary)}


__all__ = [
    "TESU_STAGES",
    "AudioSecondsCounter",
    "EncoderStageTrainer",
    "StageBudget",
    "TesuSummary",
    "TextAsSpeechCollator",
    "TextPathSimulation",
    "UnitCTCCollator",
    "arithmetic_accuracy",
    "freeze_for_stage",
    "spoken_sums",
    "stage_arguments",
    "text_rows",
    "tokenizer_texts",
]
