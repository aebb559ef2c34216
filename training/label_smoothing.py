"""Label smoothing for a causal LM that transformers' Trainer does not know as one.

Trainer shifts labels before smoothing only for classes in its causal-LM table; for any other model it compares the
logits at position t with the label at t, one token off. `ShiftedLabelSmoother` is the shifted version as a
`compute_loss_func`: `Trainer(..., args=TrainingArguments(label_smoothing_factor=0.1),
compute_loss_func=ShiftedLabelSmoother(0.1))`. `training.train.MelLLMTrainer` installs it by itself.
"""

import torch
from transformers.trainer_pt_utils import LabelSmoother


class ShiftedLabelSmoother:
    """`LabelSmoother(epsilon)` applied as to a causal LM: the logits at t are scored against the label at t + 1."""

    def __init__(self, epsilon: float):
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"Label smoothing epsilon must be in [0, 1), got {epsilon}.")
        self.smoother = LabelSmoother(epsilon=epsilon)

    def __call__(self, outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        return self.smoother(outputs, labels, shift_labels=True, num_items_in_batch=num_items_in_batch)


__all__ = ["ShiftedLabelSmoother"]
