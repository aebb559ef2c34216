"""Length-grouped batches for speech: similar durations share a batch, so little of each batch is padding."""

import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


class EpochLengthGroupedSampler(Sampler[int]):
    """
    transformers' length grouping (shuffled mega-batches of 50 batches, each sorted by length) with the shuffle
    drawn from `(seed, epoch)`. Trainer calls `set_epoch` at every epoch start, resumed runs included, so a run
    resumed mid-epoch replays the order an uninterrupted run used; `LengthGroupedSampler` draws from the global RNG
    instead, whose state at a resume differs from its state at the epoch's start.
    """

    def __init__(self, lengths: list[float], batch_size: int, seed: int = 0):
        if not lengths:
            raise ValueError("Length grouping needs at least one example length.")
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


__all__ = ["EpochLengthGroupedSampler"]
