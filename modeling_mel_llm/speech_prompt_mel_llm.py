"""The start of `generate_speech`: each row's text prompt, optionally followed by recorded speech to continue.

Zero-shot continuation (MELD's and VALL-E's TTS test: the text of an utterance plus its first 3 s of audio) gives
`generate_speech` a `speech_prompt`: log-mel frames of the opening, which enter exactly as teacher-forced TTS
targets do (the audio path's embeddings, or the encoder's argmax codes with discrete latents) after the whole text;
the model then speaks on from there. Only whole patches of the opening are used.
Shapes: B batch, L tokens, T frames, M mel bins, P patches, F patch values, G code groups, D LLM hidden.
"""

from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass
class SpokenOpening:
    """One row's recorded opening: (P, D) LLM inputs, (P, F) CMVN patches and (P, G) codes (discrete latents)."""

    embeds: torch.Tensor
    patches: torch.Tensor
    codes: torch.Tensor | None


def spoken_openings(
    model, speech_prompt: torch.Tensor, speech_prompt_mask: torch.Tensor | None
) -> list[SpokenOpening]:
    """Each row's opening, cut to its whole patches (a row needs at least one)."""
    config = model.config
    if speech_prompt.ndim != 3 or speech_prompt.shape[-1] != config.num_mel_bins:
        raise ValueError(
            f"speech_prompt must be log-mel frames (batch, frames, {config.num_mel_bins}) from the feature "
            f"extractor, got {tuple(speech_prompt.shape)}."
        )
    if speech_prompt_mask is None:
        speech_prompt_mask = torch.ones(speech_prompt.shape[:2], dtype=torch.bool, device=speech_prompt.device)
    frames_per_patch = config.frames_per_patch
    whole = (speech_prompt_mask.sum(-1) // frames_per_patch).tolist()  # whole patches per row
    if min(whole) < 1:
        raise ValueError(f"Each speech_prompt needs at least {frames_per_patch} frames (one patch); got {whole}.")
    features = speech_prompt.to(model.get_input_embeddings().weight.dtype)
    cmvn = model.audio_frontend.norm(features)
    mask = speech_prompt_mask.bool()
    pad = -cmvn.shape[1] % frames_per_patch
    patches = F.pad(cmvn * mask[..., None], (0, 0, 0, pad)).reshape(
        cmvn.shape[0], -1, frames_per_patch * cmvn.shape[-1]
    )
    codes = None
    if model.speech_latent is not None:  # the codes a teacher-forced target gives: the posterior's argmax
        logits, _ = model.speech_latent.encode(cmvn, mask)
        codes = logits.argmax(-1)  # (B, P, G)
        embeds = model.speech_latent.embed(F.one_hot(codes, model.speech_latent.codes))
    else:
        embeds = model.get_audio_features(features, mask).last_hidden_state
    return [
        SpokenOpening(embeds[r, :count], patches[r, :count], None if codes is None else codes[r, :count])
        for r, count in enumerate(whole)
    ]


def prompt_embeddings(
    model, prompts: list[list[int]], openings: list[SpokenOpening] | None, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L, D) left-padded embeddings of each row's text tokens (then its opening, if any) and their (B, L) mask."""
    embedding = model.get_input_embeddings()
    device = embedding.weight.device
    rows = [embedding(torch.tensor(tokens, device=device)) for tokens in prompts]
    if openings is not None:
        rows = [torch.cat([text, opening.embeds.to(text.dtype)]) for text, opening in zip(rows, openings, strict=True)]
    width = max(len(row) for row in rows)
    pad = embedding(torch.tensor([pad_id], device=device))
    embeds = torch.stack([torch.cat([pad.expand(width - len(row), -1), row]) for row in rows])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    return embeds, mask


__all__ = ["SpokenOpening", "prompt_embeddings", "spoken_openings"]
