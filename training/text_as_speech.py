"""TESU's text-only stage data: generated text spelled into units, made to look like the speech path's output.

The speech path gives, after blank-skip and merge, about one soft posterior per unit, with some units missed and a
few split in two. The text path imitates that (TASU's recipe): each unit is dropped with `drop_rate`, repeated with
`repeat_rate`, and its one-hot smoothed by α ~ U(0, `smoothing_max`) drawn per item. `TextAsSpeechCollator` builds
the batches, and refuses audio: in this stage the LLM side learns from text alone.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from processing import MelLLMProcessor
from processing.text_normalization_mel_llm import cardinal
from training.tiny import DIGIT_WORDS


ARITHMETIC_INSTRUCTION = "Add the two spoken numbers."
TEXT_SOURCES = ("digits", "sentences")


@dataclass(frozen=True)
class TextPathSimulation:
    """How text-path posteriors are roughened: a training choice (training arguments), not saved with the model."""

    smoothing_max: float = 0.1
    drop_rate: float = 0.05
    repeat_rate: float = 0.02

    def __post_init__(self) -> None:
        for name in ("smoothing_max", "drop_rate", "repeat_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"text_{name} must be within [0, 1), got {getattr(self, name)}.")


def simulate_posteriors(
    unit_ids: list[int], num_units: int, simulation: TextPathSimulation, rng: np.random.Generator
) -> np.ndarray:
    """(U', C) pseudo-posteriors of `unit_ids` (never empty): dropped, repeated, smoothed over the non-blank units."""
    kept = [unit for unit in unit_ids if rng.random() >= simulation.drop_rate]
    kept = kept or [unit_ids[rng.integers(len(unit_ids))]]
    units = [copy for unit in kept for copy in [unit] * (2 if rng.random() < simulation.repeat_rate else 1)]
    smoothing = rng.uniform(0.0, simulation.smoothing_max) if simulation.smoothing_max > 0 else 0.0
    posteriors = np.full((len(units), num_units), smoothing / (num_units - 2), dtype=np.float32)
    posteriors[:, 0] = 0.0  # the blank never survives the speech path's blank-skip as the best unit
    posteriors[np.arange(len(units)), units] = 1.0 - smoothing
    return posteriors


@dataclass
class TextExample:
    """One text-only row: what enters as speech, the instruction (None: transcribe), and the answer."""

    spoken: str
    target: str
    instruction: str | None = None


class GeneratedTextDataset(Dataset):
    """
    `num_examples` seeded rows: transcription rows of 1-3 digit words (`digits`) or of `sentences` (`sentences`),
    and an `arithmetic_share` of rows "three five" → "eight" under `ARITHMETIC_INSTRUCTION`.
    """

    def __init__(
        self,
        num_examples: int,
        source: str = "digits",
        arithmetic_share: float = 0.0,
        sentences: list[str] | None = None,
        seed: int = 0,
    ):
        if source not in TEXT_SOURCES:
            raise ValueError(f"tesu_text={source!r}; choose one of {TEXT_SOURCES}, or give a text file.")
        if source == "sentences" and not sentences:
            raise ValueError("Sentence rows need sentences to draw from.")
        if not 0.0 <= arithmetic_share <= 1.0:
            raise ValueError(f"tesu_arithmetic_share must be within [0, 1], got {arithmetic_share}.")
        if num_examples < 1:
            raise ValueError(f"tesu_text_examples must be positive, got {num_examples}.")
        self.num_examples, self.source, self.arithmetic_share = num_examples, source, arithmetic_share
        self.sentences, self.seed = sentences or [], seed

    def __len__(self) -> int:
        return self.num_examples

    def example(self, index: int) -> TextExample:
        rng = np.random.default_rng([self.seed, index])
        if rng.random() < self.arithmetic_share:
            a, b = (int(n) for n in rng.integers(0, 10, size=2))
            return TextExample(f"{DIGIT_WORDS[a]} {DIGIT_WORDS[b]}", cardinal(a + b), ARITHMETIC_INSTRUCTION)
        if self.source == "sentences":
            sentence = self.sentences[int(rng.integers(len(self.sentences)))]
            return TextExample(sentence, sentence)
        words = " ".join(DIGIT_WORDS[int(n)] for n in rng.integers(0, 10, size=int(rng.integers(1, 4))))
        return TextExample(words, words)

    def __getitem__(self, index: int) -> dict:
        example = self.example(index)
        return {**vars(example), "seed": int(np.random.default_rng([self.seed, index, 1]).integers(2**31))}


@dataclass
class TextAsSpeechCollator:
    """Text-only batches for the unified model: prompt (the ASR instruction or the row's), units as pseudo-speech,
    answer as labels. A batch that carries audio raises."""

    processor: MelLLMProcessor
    simulation: TextPathSimulation = TextPathSimulation()

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        with_audio = [i for i, example in enumerate(examples) if example.get("audio") is not None]
        if with_audio:
            raise ValueError(
                f"Examples {with_audio[:5]} carry audio, but this is the text-only stage: the LLM side must learn "
                "from text alone (TESU). Give text rows ({'spoken', 'target', 'instruction'})."
            )
        num_units = len(self.processor.unit_vocabulary)
        posteriors = [
            simulate_posteriors(
                self.processor.text_units(example["spoken"]),
                num_units,
                self.simulation,
                np.random.default_rng(example.get("seed", 0)),
            )
            for example in examples
        ]
        prompts = [self.processor.build_prompt(example.get("instruction")) for example in examples]
        return dict(
            self.processor(
                text=prompts, text_as_speech=posteriors, text_target=[example["target"] for example in examples]
            )
        )


__all__ = [
    "ARITHMETIC_INSTRUCTION",
    "GeneratedTextDataset",
    "TextAsSpeechCollator",
    "TextExample",
    "TextPathSimulation",
    "simulate_posteriors",
]
