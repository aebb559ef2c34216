"""Parallel scheduled sampling for TTS (Duckworth et al., 2019): a training concern, so it never touches the config.

A model trained only on recorded patches drifts when it reads its own smoother output at synthesis. Here a
gradient-free teacher-forced pass predicts every patch, and each fed-back patch is replaced by that prediction with
probability `p`; the loss keeps the recorded targets. `MelLLMTrainer.compute_loss` (training/train.py) applies it.
"""

import torch

from modeling_mel_llm import MelLLMForSpeechLM
from modeling_mel_llm.mel_head import tts_target_mask


@torch.no_grad()
def mix_in_own_predictions(model: MelLLMForSpeechLM, batch: dict, probability: float) -> torch.Tensor:
    """Log-mel frames shaped like `batch["mel_targets"]` to feed back: each patch of the TTS rows is the model's own
    prediction (sampled at temperature 1, as synthesis samples) with `probability`, else the recording."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"tts_scheduled_sampling must be within [0, 1], got {probability}.")
    mel_targets = batch["mel_targets"]
    mel_target_mask = tts_target_mask(
        model.config.tts_head, batch["input_ids"], mel_targets, batch.get("mel_target_mask")
    )
    step, patch_mask, _ = model.predict_patches(
        batch["input_ids"],
        batch.get("attention_mask"),
        mel_targets,
        mel_target_mask,
        1.0,
        batch.get("input_features"),
        batch.get("input_features_mask"),
    )
    patches = step.patch.reshape(len(step.patch), -1, model.config.num_mel_bins)
    frames = model.audio_frontend.norm.denormalize(patches)  # what generation feeds
    chosen = torch.rand(patch_mask.shape, device=patch_mask.device) < probability
    chosen = chosen.repeat_interleave(model.config.frames_per_patch, dim=1)[:, : mel_targets.shape[1]]
    replace = (chosen & mel_target_mask)[..., None]
    return torch.where(replace, frames[:, : mel_targets.shape[1]].to(mel_targets.dtype), mel_targets)


__all__ = ["mix_in_own_predictions"]
