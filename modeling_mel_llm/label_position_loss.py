"""The text loss of training with the LM head applied only where a token is a target (`label_logits_only`).

In ASR rows about three quarters of the positions are audio placeholders or prompt, whose logits the loss never
reads; skipping them gives the same loss and gradients for less work. modeling_mel_llm.py decides when to use it.
"""

import torch
from torch import nn


def has_plain_lm_head(text_config) -> bool:
    """Whether the backbone's logits are its LM head's output as is (no softcapping or scaling, which
    `label_position_loss` would skip)."""
    return all(getattr(text_config, name, None) is None for name in ("final_logit_softcapping", "logit_scale"))


def label_position_loss(language_model, inputs_embeds: torch.Tensor, labels: torch.Tensor, **kwargs) -> torch.Tensor:
    """
    The backbone's causal-LM loss with its LM head applied only at the positions whose next token is a target: the
    same loss and gradients as the full forward for a fraction of the head's work (in ASR training about three
    quarters of the positions are audio or prompt). Like Liger's fused loss in transformers' Trainer, it returns no
    logits. `kwargs` go to the decoder and the loss, as the backbone's own forward passes them; `shift_labels`
    (targets already aligned, as sequence-parallel training hands them over) replace the shifted `labels`.
    """
    shift_labels = kwargs.pop("shift_labels", None)
    hidden = language_model.get_decoder()(inputs_embeds=inputs_embeds, **kwargs).last_hidden_state
    targets = shift_labels  # (B, L): the token each position predicts
    if targets is None:
        targets = nn.functional.pad(labels, (0, 1), value=-100)[:, 1:]
    kept = targets != -100
    logits = language_model.get_output_embeddings()(hidden[kept])  # (N, V)
    vocab_size = logits.shape[-1]
    return language_model.loss_function(
        logits=logits[None], labels=None, shift_labels=targets[kept][None], vocab_size=vocab_size, **kwargs
    )


__all__ = ["has_plain_lm_head", "label_position_loss"]
