"""Which speech a run trains and evaluates on: the embedded synthetic corpus, FSDD, JSONL manifests or `datasets`."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from processing import load_audio
from training.arguments import DataArguments
from training.augment import AugmentConfig
from training.corpus.fsdd import fsdd_utterances
from training.corpus.synthetic_corpus import (
    build_corpus,
    cache_root,
    neural_manifest,
    speakers_manifest,
    unseen_words_manifest,
)
from training.corpus.voice_mix import held_out_splits, parse_voice_mix
from training.data import (
    HubSpeechDataset,
    SpeechTextDataset,
    StreamingSpeechDataset,
    Utterance,
    load_hub_split,
    read_manifest,
)


CORPORA = ("synthetic", "fsdd", "manifest", "hub")


@dataclass
class TrainingData:
    train: object  # a torch Dataset / IterableDataset of {"audio", "text", "id", "seed"}
    train_texts: list[str]  # transcripts that a from-scratch tokenizer is trained on
    wer_sets: dict[str, list[Utterance]] = field(default_factory=dict)  # held-out sets transcribed for WER
    eval_loss: object | None = None  # optional dataset for the teacher-forced eval loss

    @property
    def has_length(self) -> bool:
        return hasattr(self.train, "__len__")


def _limit(utterances: list[Utterance], limit: int | None) -> list[Utterance]:
    """An evenly spread subset (held-out sets are ordered by voice/speaker)."""
    if limit is None or len(utterances) <= limit:
        return utterances
    return [utterances[i] for i in np.linspace(0, len(utterances) - 1, limit).astype(int)]


def subsample(utterances: list[Utterance], fraction: float, seed: int) -> list[Utterance]:
    """A seeded random `fraction` of `utterances` (at least one), in their original order."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"train_fraction={fraction} must be in (0, 1].")
    if fraction == 1.0:
        return utterances
    keep = max(1, round(fraction * len(utterances)))
    chosen = np.random.default_rng(seed).choice(len(utterances), size=keep, replace=False)
    return [utterances[i] for i in sorted(chosen)]


def fsdd_splits(
    test_speaker: str | None, fsdd_dir: str | None = None
) -> tuple[list[Utterance], dict[str, list[Utterance]]]:
    """Takes 5-49 train / 0-4 test (FSDD's convention), or leave-one-speaker-out when `test_speaker` is set. FSDD is
    read from `fsdd_dir` or `$MEL_LLM_FSDD_DIR` (training/corpus/fsdd.py)."""
    utterances = fsdd_utterances(fsdd_dir)
    if test_speaker is None:
        train = [u for u in utterances if u.metadata["fsdd_split"] == "train"]
        return train, {"fsdd_test": [u for u in utterances if u.metadata["fsdd_split"] == "test"]}
    speakers = sorted({u.metadata["speaker"] for u in utterances})
    if test_speaker not in speakers:
        raise ValueError(f"fsdd_test_speaker={test_speaker!r} is not one of {speakers}.")
    train = [u for u in utterances if u.metadata["speaker"] != test_speaker]
    return train, {f"fsdd_{test_speaker}": [u for u in utterances if u.metadata["speaker"] == test_speaker]}


def materialize_eval_set(dataset, args: DataArguments, folder: Path) -> list[Utterance]:
    """Write up to `eval_max_samples` examples of a `datasets` split as 16 kHz WAVs, so WER runs on files."""
    folder.mkdir(parents=True, exist_ok=True)
    utterances = []
    for index, row in enumerate(dataset):
        if args.eval_max_samples is not None and index >= args.eval_max_samples:
            break
        path = folder / f"{index:06d}.wav"
        soundfile.write(path, load_audio(row[args.audio_column], 16_000), 16_000)
        utterances.append(Utterance(path, str(row[args.text_column]).strip(), index))
    return utterances


def synthetic_manifests(args: DataArguments, seed: int) -> tuple[Path, Path]:
    """`(train, eval)` manifests of the synthetic corpus these arguments describe, synthesised on first use."""
    return build_corpus(
        num_train=args.synthetic_num_train,
        num_eval=args.synthetic_num_eval,
        seed=seed,
        voice=args.synthetic_voice,
        pseudo_accent_share=args.synthetic_pseudo_accent_share,
        pseudo_accent_voices_count=args.synthetic_pseudo_accents,
        pseudo_accent_rules=args.pseudo_accent_rules(),
        text_source=args.synthetic_text,
        voices=args.synthetic_voices,
    )


def load_training_data(args: DataArguments, augment: AugmentConfig, seed: int) -> TrainingData:
    if args.corpus not in CORPORA:
        raise ValueError(f"corpus={args.corpus!r}; choose one of {CORPORA}.")
    if args.corpus == "hub":
        if args.train_fraction != 1.0:
            raise ValueError("train_fraction applies to manifest corpora; for corpus='hub' use a split slice.")
        if args.extra_train_manifests:
            raise ValueError("extra_train_manifests join manifest corpora; for corpus='hub' add them as data files.")
        return _hub_data(args, augment, seed)
    if args.corpus == "synthetic":
        train_manifest, eval_manifest = synthetic_manifests(args, seed)
        train = read_manifest(train_manifest)
        if args.synthetic_voice:
            wer_sets = {f"synthetic_{args.synthetic_voice}_unseen_texts": read_manifest(eval_manifest)}
        else:  # new speakers of the training accents, and new speakers of new accents
            wer_sets = {
                "synthetic_heldout_speakers": read_manifest(speakers_manifest(eval_manifest)),
                "synthetic_heldout_accents": read_manifest(eval_manifest),
            }
        if args.synthetic_text == "open":  # sentences with words that training never has
            wer_sets["synthetic_unseen_words"] = read_manifest(unseen_words_manifest(eval_manifest))
        for split in held_out_splits(parse_voice_mix(args.synthetic_voices)):  # neural speakers training never has
            engine = split.removeprefix("eval_")
            wer_sets[f"synthetic_heldout_{engine}_speakers"] = read_manifest(neural_manifest(eval_manifest, engine))
    elif args.corpus == "fsdd":
        train, wer_sets = fsdd_splits(args.fsdd_test_speaker, args.fsdd_dir)
    else:
        if not args.train_manifest:
            raise ValueError("corpus='manifest' needs train_manifest (and usually eval_manifest).")
        train = read_manifest(args.train_manifest)
        eval_manifests = [*([args.eval_manifest] if args.eval_manifest else []), *(args.extra_eval_manifests or [])]
        wer_sets = {Path(manifest).stem: read_manifest(manifest) for manifest in eval_manifests}
    train = subsample(train, args.train_fraction, seed)
    for manifest in args.extra_train_manifests or []:
        train += read_manifest(manifest)
    if args.eval_max_samples == 0:
        wer_sets = {}
    wer_sets = {name: _limit(utterances, args.eval_max_samples) for name, utterances in wer_sets.items()}
    return TrainingData(
        train=SpeechTextDataset(train, augment, seed), train_texts=[u.text for u in train], wer_sets=wer_sets
    )


def _hub_data(args: DataArguments, augment: AugmentConfig, seed: int) -> TrainingData:
    if not args.dataset_name:
        raise ValueError("corpus='hub' needs dataset_name (a Hub id, or a builder such as 'parquet' + data files).")
    data_files = args.dataset_data_files
    split = load_hub_split(
        args.dataset_name, args.dataset_config, args.train_split, args.audio_column, data_files, args.streaming
    )
    if args.streaming:
        train = StreamingSpeechDataset(split, args.audio_column, args.text_column, augment, seed)
        texts = [row[args.text_column] for _, row in zip(range(2000), split, strict=False)]
    else:
        train = HubSpeechDataset(split, args.audio_column, args.text_column, augment, seed)
        texts = list(split[args.text_column])
    wer_sets = {}
    if args.eval_split and args.eval_max_samples != 0:
        evaluation = load_hub_split(
            args.dataset_name, args.dataset_config, args.eval_split, args.audio_column, data_files, streaming=True
        )
        name = f"{Path(args.dataset_name).name}_{args.eval_split}"
        wer_sets[name] = materialize_eval_set(evaluation, args, cache_root() / "eval_sets" / name)
    return TrainingData(train=train, train_texts=texts, wer_sets=wer_sets)


__all__ = ["CORPORA", "TrainingData", "fsdd_splits", "load_training_data", "subsample"]
