"""Speech/text examples → model batches: manifests, `datasets` sources, augmentation hooks and the padding collator."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from processing import MelLLMProcessor, load_audio
from training.augment import AugmentConfig, augment_waveform, example_rng, spec_augment


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

    def _example(self, audio: np.ndarray, text: str, index: int) -> dict:
        # Recording levels differ ~8x between FSDD speakers; log-mel shifts with gain, so level them first.
        audio = audio / max(float(np.abs(audio).max()), 1e-4) * np.float32(0.9)
        rng = example_rng(self.seed, self.epoch, index)
        if self.augment.changes_waveform:
            audio = augment_waveform(audio, rng, self.augment, self.sampling_rate)
        return {"audio": audio.astype(np.float32), "text": text, "id": index, "seed": int(rng.integers(2**31))}


class SpeechTextDataset(_Augmenting, Dataset):
    """Manifest utterances decoded lazily to 16 kHz mono float32 (soundfile + soxr: no FFmpeg, no torchaudio)."""

    def __init__(self, utterances: list[Utterance], augment: AugmentConfig = NO_AUGMENT, seed: int = 0):
        self.utterances, self.augment, self.seed = utterances, augment, seed

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> dict:
        utterance = self.utterances[index]
        return self._example(load_audio(str(utterance.audio_path), self.sampling_rate), utterance.text, index)


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


@dataclass
class MelLLMDataCollator:
    """Pads `{"audio", "text"}` examples with the processor (features right-padded, tokens left-padded), then
    applies SpecAugment per example from its own seed."""

    processor: MelLLMProcessor
    augment: AugmentConfig = NO_AUGMENT

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = dict(
            self.processor(
                audio=[example["audio"] for example in examples],
                sampling_rate=self.processor.feature_extractor.sampling_rate,
                text_target=[example["text"] for example in examples],
            )
        )
        if self.augment.masks_features:
            frames = batch["input_features_mask"].sum(-1).tolist()
            for i, example in enumerate(examples):
                rng = np.random.default_rng(example.get("seed", 0))
                spec_augment(batch["input_features"][i], frames[i], rng, self.augment)
        return batch


__all__ = [
    "HubSpeechDataset",
    "MelLLMDataCollator",
    "SpeechTextDataset",
    "StreamingSpeechDataset",
    "Utterance",
    "load_hub_split",
    "read_manifest",
]
