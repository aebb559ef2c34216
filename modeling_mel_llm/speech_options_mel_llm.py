"""How `generate_speech` samples and when it stops, checked once; and the logits processors for discrete codes."""

from dataclasses import dataclass

from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TopKLogitsWarper, TopPLogitsWarper


@dataclass(frozen=True)
class SpeechGenerationOptions:
    """How `generate_speech` samples and when it stops (see its docstring for each field)."""

    max_new_frames: int = 1000
    temperature: float = 1.0
    stop_threshold: float = 0.5
    min_new_frames: int = 0
    seed: int | None = None
    max_frames_per_word: int = 300
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None

    def __post_init__(self) -> None:
        if self.max_new_frames < 1:
            raise ValueError(f"max_new_frames must be positive, got {self.max_new_frames}.")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}.")
        if self.min_new_frames < 0 or self.max_frames_per_word < 1:
            raise ValueError(
                f"min_new_frames must be >= 0 and max_frames_per_word positive, got {self.min_new_frames} and "
                f"{self.max_frames_per_word}."
            )
        if (self.top_k is not None and self.top_k < 1) or (self.top_p is not None and not 0 < self.top_p <= 1):
            raise ValueError(f"top_k must be >= 1 and top_p within (0, 1], got {self.top_k} and {self.top_p}.")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be positive, got {self.repetition_penalty}.")

    def code_processors(self) -> LogitsProcessorList | None:
        """transformers' logits processors for discrete codes (a row's earlier codes count as its input ids)."""
        processors = LogitsProcessorList()
        if self.repetition_penalty is not None:
            processors.append(RepetitionPenaltyLogitsProcessor(self.repetition_penalty))
        if self.top_k is not None:
            processors.append(TopKLogitsWarper(self.top_k))
        if self.top_p is not None:
            processors.append(TopPLogitsWarper(self.top_p))
        return processors or None


__all__ = ["SpeechGenerationOptions"]
