"""Speech/text examples → model batches: JSONL manifests, audio loading, and the padding collator."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from processing import MelLLMProcessor, load_audio


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


class SpeechTextDataset(Dataset):
    """Utterances decoded lazily to 16 kHz mono float32 (soundfile + soxr: no FFmpeg, no torchaudio)."""

    def __init__(self, utterances: list[Utterance], sampling_rate: int = 16_000, peak_normalize: bool = True):
        self.utterances = utterances
        self.sampling_rate = sampling_rate
        self.peak_normalize = peak_normalize

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> dict:
        utterance = self.utterances[index]
        audio = load_audio(str(utterance.audio_path), self.sampling_rate)
        if self.peak_normalize:
            # Recording levels differ ~8x between FSDD speakers; log-mel shifts with gain, so level them.
            audio = audio / max(float(np.abs(audio).max()), 1e-4) * 0.9
        return {"audio": audio, "text": utterance.text}


@dataclass
class MelLLMDataCollator:
    """Pads a list of `{"audio", "text"}` examples with the processor: features right-padded, tokens left-padded."""

    processor: MelLLMProcessor

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.processor(
            audio=[example["audio"] for example in examples],
            sampling_rate=self.processor.feature_extractor.sampling_rate,
            text_target=[example["text"] for example in examples],
        )
        return dict(batch)


__all__ = ["MelLLMDataCollator", "SpeechTextDataset", "Utterance", "read_manifest"]
