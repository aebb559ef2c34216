"""MelLLMConformerEncoder: Phi-4-MM's conformer blocks over conv-subsampled patches, for the encoder baseline.

Used by modeling_mel_llm.py when `frontend="encoder"`. The blocks are transformers' own Phi-4-multimodal classes, so
module names (`encoders.N.*`, `relative_attention_bias_layer`) match Phi-4-MM's `audio_embed.encoder` one to one.
Shapes: B batch, P patches (conformer tokens), F conformer width, H heads.
"""

import torch
from torch import nn
from transformers import Phi4MultimodalAudioConfig
from transformers.models.phi4_multimodal.modeling_phi4_multimodal import (
    Phi4MultimodalAudioConformerEncoderLayer,
    Phi4MultimodalAudioGluPointWiseConv,
    Phi4MultimodalAudioRelativeAttentionBias,
)

from .configuration_mel_llm import MelLLMConfig


def phi4mm_audio_config(config: MelLLMConfig) -> Phi4MultimodalAudioConfig:
    """The Phi-4-MM audio config whose conformer blocks have the shapes `config` asks for."""
    audio_config = Phi4MultimodalAudioConfig(
        hidden_size=config.conv_output_size,
        intermediate_size=config.conformer_ffn_dim,
        num_blocks=config.conformer_layers,
        num_attention_heads=config.conformer_attention_heads,
        ext_pw_out_channel=config.conv_output_size,
        depthwise_separable_out_channel=config.conv_output_size,
        kernel_size=config.conformer_conv_kernel_size,
        input_size=config.num_mel_bins,
        time_reduction=config.frames_per_patch,
        nemo_conv_channels=config.conv_channels,
        bias_max_distance=config.conformer_bias_max_distance,
    )
    audio_config._attn_implementation = "sdpa"  # takes the float mask below; exact on CPU and GPU
    return audio_config


class MelLLMConformerEncoder(nn.Module):
    """
    Conformer blocks with a T5-style relative attention bias, as in Phi-4-MM's audio encoder. Unlike Phi-4-MM (whose
    boolean pad mask is *added* to the bias, so padding is only down-weighted), padded patches are excluded from
    attention, so a clip gives the same output alone or padded in a batch. For one unpadded clip both agree exactly.
    """

    def __init__(self, config: MelLLMConfig):
        super().__init__()
        audio_config = phi4mm_audio_config(config)
        self.chunk_length = config.conformer_chunk_length
        self.relative_attention_bias_layer = Phi4MultimodalAudioRelativeAttentionBias(audio_config)
        self.encoders = nn.ModuleList(
            [Phi4MultimodalAudioConformerEncoderLayer(audio_config) for _ in range(config.conformer_layers)]
        )

    def attention_mask(self, hidden: torch.Tensor, patch_mask: torch.Tensor) -> torch.Tensor:
        """(B, H, P, P) additive mask: the relative bias, and minus "infinity" on padded keys."""
        eye = torch.eye(hidden.shape[1], dtype=torch.bool, device=hidden.device)
        allowed = patch_mask[:, None, :] | eye  # (B, P, P) query → key; a padded query sees itself, no empty rows
        blocked = torch.zeros(allowed.shape, dtype=hidden.dtype, device=hidden.device)
        blocked = blocked.masked_fill(~allowed, torch.finfo(hidden.dtype).min)
        return self.relative_attention_bias_layer(hidden).to(hidden.dtype) + blocked[:, None]

    def forward(self, hidden: torch.Tensor, patch_mask: torch.Tensor) -> torch.Tensor:
        """
        (B, P, F) conv-subsampled patches and their (B, P) mask → (B, P, F), padding zeroed. Like Phi-4-MM, sequences
        longer than `chunk_length` are cut into independent chunks (attention and the causal conv stay inside one).
        """
        batch, length, width = hidden.shape
        chunk = min(self.chunk_length, length)
        pad = -length % chunk
        chunks = nn.functional.pad(hidden, (0, 0, 0, pad)).reshape(-1, chunk, width)  # (B·C, chunk, F)
        chunk_mask = nn.functional.pad(patch_mask, (0, pad)).reshape(-1, chunk)  # (B·C, chunk)
        attention_mask = self.attention_mask(chunks, chunk_mask)
        for layer in self.encoders:
            chunks = layer(chunks, attention_mask)
        hidden = chunks.reshape(batch, -1, width)[:, :length]
        return hidden.masked_fill(~patch_mask[..., None], 0.0)


__all__ = ["MelLLMConformerEncoder", "Phi4MultimodalAudioGluPointWiseConv", "phi4mm_audio_config"]
