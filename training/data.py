"""Speech/text examples → model batches: manifests, `datasets` sources, augmentation hooks and the padding collator."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from processing import MelLLMProcessor, load_audio
from training.augment import (
    AugmentConfig,
    augment_waveform,
    crop_to_words,
    example_rng,
    spec_augment,
)


NO_AUGMENT = AugmentConfig()


@dataclass(frozen=True)
class Utterance:
    """One manifest line: where the audio is and what was said."""

    audio_path: Path
    text: str
    line: int = 0
    metadata: dict = field(default_factory=dict)  # the manifest's other fields (speaker, split, ...)


def read_manifest(path: str | Path, audio_key: str = "path", text_key: str = "transcript") -> list[Utterance]:
    """
    Read a JSONL manifest (one object per line; audio paths relative to the manifest's folder or absolute).
    A missing audio file, a missing key or an empty transcript raises a `ValueError` naming the line.
    """
    path = Path(path)
    utterances = []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where} is not valid JSON: {error}") from error
            if audio_key not in row or text_key not in row:
                raise ValueError(f"{where} lacks the {audio_key!r} or {text_key!r} field.")
            text = str(row[text_key]).strip()
            if not text:
                raise ValueError(f"{where} has an empty transcript.")
            audio_path = Path(row[audio_key])
            audio_path = audio_path if audio_path.is_absolute() else path.parent / audio_path
            if not audio_path.is_file():
                raise ValueError(f"{where} points to a missing audio file: {audio_path}")
            metadata = {k: v for k, v in row.items() if k not in (audio_key, text_key)}
            utterances.append(Utterance(audio_path, text, number, metadata))
    if not utterances:
        raise ValueError(f"{path} holds no utterances.")
    return utterances


class _Augmenting:
    """Shared by the map-style and streaming datasets: level, augment, and tag each example with its seed."""

    sampling_rate: int = 16_000
    augment: AugmentConfig = NO_AUGMENT
    seed: int = 0
    epoch: int = 0  # set by training.train's epoch callback so augmentation differs per epoch

    def _example(self, audio: np.ndarray, text: str, index: int, word_starts: list[float] | None = None) -> dict:
        # Recording levels differ ~8x between FSDD speakers; log-mel shifts with gain, so level them first.
        if word_starts is not None and self.augment.word_crop_probability > 0:  # a stream of its own: others stay put
            crop_rng = np.random.default_rng([self.seed, self.epoch, index, 31])
            audio, text, word_starts = crop_to_words(
                audio, text, word_starts, crop_rng, self.augment, self.sampling_rate
            )
        audio = audio / max(float(np.abs(audio).max()), 1e-4) * np.float32(0.9)
        rng = example_rng(self.seed, self.epoch, index)
        length = len(audio)
        if self.augment.changes_waveform:
            audio = augment_waveform(audio, rng, self.augment, self.sampling_rate)
        example = {"audio": audio.astype(np.float32), "text": text, "id": index, "seed": int(rng.integers(2**31))}
        if word_starts is not None:  # word times follow a speed change
            example["word_starts"] = [t * len(audio) / max(length, 1) for t in word_starts]
        return example


class SpeechTextDataset(_Augmenting, Dataset):
    """Manifest utterances decoded lazily to 16 kHz mono float32 (soundfile + soxr: no FFmpeg, no torchaudio)."""

    def __init__(self, utterances: list[Utterance], augment: AugmentConfig = NO_AUGMENT, seed: int = 0):
        self.utterances, self.augment, self.seed = utterances, augment, seed

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> dict:
        utterance = self.utterances[index]
        audio = load_audio(str(utterance.audio_path), self.sampling_rate)
        return self._example(audio, utterance.text, index, utterance.metadata.get("word_starts"))


class HubSpeechDataset(_Augmenting, Dataset):
    """A `datasets.Dataset` whose audio column was cast to `Audio(decode=False)`: decoded here with soundfile."""

    def __init__(
        self, dataset, audio_column: str, text_column: str, augment: AugmentConfig = NO_AUGMENT, seed: int = 0
    ):
        self.dataset, self.audio_column, self.text_column = dataset, audio_column, text_column
        self.augment, self.seed = augment, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[index]
        return self._example(load_audio(row[self.audio_column], self.sampling_rate), row[self.text_column], index)


class StreamingSpeechDataset(_Augmenting, IterableDataset):
    """A streaming `datasets.IterableDataset` (decode=False audio); ids count examples in stream order."""

    def __init__(
        self, dataset, audio_column: str, text_column: str, augment: AugmentConfig = NO_AUGMENT, seed: int = 0
    ):
        self.dataset, self.audio_column, self.text_column = dataset, audio_column, text_column
        self.augment, self.seed = augment, seed

    def __iter__(self):
        for index, row in enumerate(self.dataset):
            yield self._example(load_audio(row[self.audio_column], self.sampling_rate), row[self.text_column], index)


def load_hub_split(name: str, config: str | None, split: str, audio_column: str, data_files=None, streaming=False):
    """`datasets.load_dataset` with the audio column left undecoded (no torchcodec/FFmpeg needed)."""
    from datasets import Audio, load_dataset

    dataset = load_dataset(name, config, split=split, streaming=streaming, data_files=data_files)
    return dataset.cast_column(audio_column, Audio(decode=False))


def is_tts_example(example: dict, tts_ratio: float) -> bool:
    """Whether this example (and epoch: its `seed` changes per epoch) is a TTS example; a stream of its own, so the
    ASR augmentation draws do not move."""
    return tts_ratio > 0 and np.random.default_rng([example.get("seed", 0), 7919]).random() < tts_ratio


def merge_batches(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], pad_id: int) -> dict:
    """Stack two processor batches row-wise: tokens left-padded to one length, frames right-padded; a key one side
    lacks (ASR has no `mel_targets`, TTS no `input_features`) becomes empty rows (mask False)."""
    length = max(first["input_ids"].shape[1], second["input_ids"].shape[1])
    fill = {"input_ids": pad_id, "attention_mask": 0, "labels": -100}
    merged = {}
    for key, value in fill.items():
        parts = [nn_pad(batch[key], (length - batch[key].shape[1], 0), value) for batch in (first, second)]
        merged[key] = torch.cat(parts)
    for features, mask in (("input_features", "input_features_mask"), ("mel_targets", "mel_target_mask")):
        present = [batch for batch in (first, second) if features in batch]
        if not present:
            continue
        frames, bins = max(b[features].shape[1] for b in present), present[0][features].shape[2]
        feature_parts, mask_parts = [], []
        for batch in (first, second):
            rows = batch["input_ids"].shape[0]
            value = batch.get(features, torch.zeros(rows, 0, bins))
            feature_parts.append(nn_pad(value, (0, 0, 0, frames - value.shape[1]), 0.0))
            value = batch.get(mask, torch.zeros(rows, 0, dtype=torch.bool))
            mask_parts.append(nn_pad(value, (0, frames - value.shape[1]), False))
        merged[features], merged[mask] = torch.cat(feature_parts), torch.cat(mask_parts)
    return merged


def pack_batch(batch: dict[str, torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
    """
    Padding-free rows: the examples of a padded ASR batch packed first-fit-decreasing into rows no longer than its
    longest example, each segment with `position_ids` counting from 0 and no `attention_mask`, from which
    transformers builds a block-causal mask (one segment never sees another). Same loss as the padded batch on a
    fraction of the tokens: with random batches of 0.2-5 s clips, about half of every padded batch is padding.
    Clips are reordered to match the order of their placeholders in the packed rows.
    """
    if "mel_targets" in batch:
        raise ValueError("Packing applies to ASR batches only; TTS rows hold one clip each.")
    lengths = batch["attention_mask"].sum(-1).tolist()
    budget = max(lengths)
    rows: list[list[int]] = []  # example indices per packed row
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, free in enumerate(room) if free >= lengths[index]), None)
        if row is None:
            rows.append([])
            room.append(budget)
            row = len(rows) - 1
        rows[row].append(index)
        room[row] -= lengths[index]
    shape = (len(rows), budget)
    packed = {
        "input_ids": torch.full(shape, pad_id, dtype=torch.long),
        "labels": torch.full(shape, -100, dtype=torch.long),
        "position_ids": torch.zeros(shape, dtype=torch.long),
    }
    for r, members in enumerate(rows):
        start = 0
        for index in members:
            keep = batch["attention_mask"][index].bool()
            span = slice(start, start + lengths[index])
            packed["input_ids"][r, span] = batch["input_ids"][index][keep]
            packed["labels"][r, span] = batch["labels"][index][keep]
            packed["position_ids"][r, span] = torch.arange(lengths[index])
            start += lengths[index]
        packed["position_ids"][r, start:] = torch.arange(budget - start)  # trailing padding: a segment of its own
    order = [index for members in rows for index in members]  # clip order = placeholder order, row by row
    packed["input_features"] = batch["input_features"][order]
    packed["input_features_mask"] = batch["input_features_mask"][order]
    return packed


def nn_pad(tensor: torch.Tensor, pad: tuple[int, ...], value) -> torch.Tensor:
    return torch.nn.functional.pad(tensor, pad, value=value)


@dataclass
class MelLLMDataCollator:
    """Pads `{"audio", "text"}` examples with the processor (features right-padded, tokens left-padded), then
    applies frequency warping and SpecAugment per example from its own seed. With `tts_ratio` > 0 that share of
    examples (drawn per example and epoch) becomes TTS examples instead: text prompt → the clip's log-mel as
    `mel_targets`."""

    processor: MelLLMProcessor
    augment: AugmentConfig = NO_AUGMENT
    tts_ratio: float = 0.0
    pack_sequences: bool = False  # ASR-only batches become padding-free packed rows (see `pack_batch`)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        tts = [example for example in examples if is_tts_example(example, self.tts_ratio)]
        asr = [example for example in examples if not is_tts_example(example, self.tts_ratio)]
        rate = self.processor.feature_extractor.sampling_rate
        tts_batch = None
        if tts:
            audio, texts = [e["audio"] for e in tts], [e["text"] for e in tts]
            word_starts = None
            if self.processor.tts_interleave_words:
                missing = [e["id"] for e in tts if "word_starts" not in e]
                if missing:
                    raise ValueError(
                        f"Examples {missing[:5]} have no word_starts, which TTS with words and speech interleaved "
                        "needs (tts_interleave_words); the synthetic corpus records them, other corpora do not."
                    )
                word_starts = [e["word_starts"] for e in tts]
            tts_batch = dict(
                self.processor.tts_inputs(texts, audio=audio, sampling_rate=rate, word_starts=word_starts)
            )
            if not asr:
                return tts_batch
        batch = dict(
            self.processor(
                audio=[example["audio"] for example in asr],
                sampling_rate=rate,
                text_target=[example["text"] for example in asr],
            )
        )
        if self.augment.changes_features:
            frames = batch["input_features_mask"].sum(-1).tolist()
            for i, example in enumerate(asr):
                rng = np.random.default_rng(example.get("seed", 0))
                spec_augment(batch["input_features"][i], frames[i], rng, self.augment)
        if tts_batch is not None:
            batch = merge_batches(batch, tts_batch, self.processor.tokenizer.pad_token_id)
        elif self.pack_sequences:
            batch = pack_batch(batch, self.processor.tokenizer.pad_token_id)
        return batch


__all__ = [
    "HubSpeechDataset",
    "MelLLMDataCollator",
    "SpeechTextDataset",
    "StreamingSpeechDataset",
    "Utterance",
    "is_tts_example",
    "load_hub_split",
    "merge_batches",
    "pack_batch",
    "read_manifest",
]
