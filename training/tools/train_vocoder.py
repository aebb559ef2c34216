"""Train a HiFi-GAN vocoder on Mel-LLM log-mel (Phi-4-MM features, 10 ms hop, 16 kHz) and bundle it with a model.

    python -m training.tools.train_vocoder --model runs/tts_cpu [--steps 2000] [--channels 128] [--manifest M.jsonl]
    python -m training.tools.train_vocoder --out runs/vocoder --steps 20         # a stand-alone vocoder folder

Data: the embedded synthetic corpus (or any JSONL manifest), random segments of `--segment-frames` frames.
Losses (HiFi-GAN): LSGAN on MPD + MSD, 2 × feature matching, 45 × L1 between the log-mel of the generated and the
real segment (the extractor's own features, computed differentiably). The generator is written with
`save_pretrained` to `MODEL/vocoder/` (or `--out`), where the TTS pipeline picks it up instead of Griffin-Lim.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from transformers import SpeechT5HifiGan

from processing import MelLLMFeatureExtractor, MelLLMHifiGan, load_audio
from processing.feature_extraction_mel_llm import HOP_LENGTH, WIN_LENGTH
from processing.vocoder_mel_llm import VOCODER_SUBFOLDER
from training.corpus.synthetic_corpus import cached_corpus_manifests
from training.data import read_manifest
from training.tools.hifigan import (
    HifiGanDiscriminators,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)


# Generator block t covers samples [160t, 160t + 160) (centre +80); extractor frame t is centred on 160t + 200.
TARGET_OFFSET = WIN_LENGTH // 2 - HOP_LENGTH // 2


def load_clips(manifest: str | None, max_clips: int, rate: int = 16_000) -> list[np.ndarray]:
    """Peak-levelled clips (as the TTS targets are) from a manifest, or the synthetic corpus's training split."""
    path = manifest or cached_corpus_manifests()[0]
    utterances = read_manifest(path)[:max_clips]
    clips = []
    for utterance in utterances:
        audio = load_audio(str(utterance.audio_path), rate)
        clips.append((audio / max(float(np.abs(audio).max()), 1e-4) * 0.9).astype(np.float32))
    return clips


def sample_batch(clips: list[np.ndarray], batch_size: int, frames: int, rng: np.random.Generator) -> torch.Tensor:
    """(B, (frames - 1)·160 + 400) random segments; short clips are zero-padded."""
    length = (frames - 1) * HOP_LENGTH + WIN_LENGTH
    batch = np.zeros((batch_size, length), dtype=np.float32)
    for row in range(batch_size):
        clip = clips[rng.integers(len(clips))]
        start = rng.integers(max(1, len(clip) - length + 1))
        piece = clip[start : start + length]
        batch[row, : len(piece)] = piece
    return torch.from_numpy(batch)


def build_generator(
    extractor: MelLLMFeatureExtractor, clips: list[np.ndarray], channels: int, resblock_kernels: list[int]
) -> SpeechT5HifiGan:
    """A HiFi-GAN for hop 160 whose normalisation buffers hold the log-mel statistics of `clips`."""
    config = MelLLMHifiGan.build_config(
        extractor.feature_size,
        upsample_initial_channel=channels,
        resblock_kernel_sizes=resblock_kernels,
        resblock_dilation_sizes=[[1, 3, 5]] * len(resblock_kernels),
    )
    generator = SpeechT5HifiGan(config)
    features = extractor(clips[:256], sampling_rate=extractor.sampling_rate)
    frames = features["input_features"][features["input_features_mask"]]  # (frames, M)
    generator.mean.copy_(frames.mean(0))
    generator.scale.copy_(frames.std(0).clamp(min=1e-3))
    return generator


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    extractor = MelLLMFeatureExtractor()
    clips = load_clips(args.manifest, args.max_clips)
    generator = build_generator(extractor, clips, args.channels, args.resblock_kernels)
    discriminators = HifiGanDiscriminators(width=args.disc_width)
    g_opt = torch.optim.AdamW(generator.parameters(), args.learning_rate, betas=(0.8, 0.99))
    d_opt = torch.optim.AdamW(discriminators.parameters(), args.learning_rate, betas=(0.8, 0.99))
    history, started = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        audio = sample_batch(clips, args.batch_size, args.segment_frames, rng)
        log_mel = extractor.log_mel(audio)  # (B, F, M)
        target = audio[:, TARGET_OFFSET : TARGET_OFFSET + args.segment_frames * HOP_LENGTH]
        generated = generator(log_mel)  # (B, F·160)

        d_loss = discriminator_loss(discriminators(target), discriminators(generated.detach()))
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()

        real, fake = discriminators(target), discriminators(generated)
        mel_loss = (extractor.log_mel(generated) - extractor.log_mel(target)).abs().mean()
        g_loss = generator_adversarial_loss(fake) + 2 * feature_matching_loss(real, fake) + 45 * mel_loss
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        history.append({"step": step, "mel_l1": mel_loss.item(), "g": g_loss.item(), "d": d_loss.item()})
        if step % args.log_every == 0 or step == args.steps:
            print(
                f"step {step}: mel L1 {mel_loss.item():.3f}, G {g_loss.item():.2f}, D {d_loss.item():.2f}", flush=True
            )
    folder = Path(args.model) / VOCODER_SUBFOLDER if args.model else Path(args.out)
    generator.save_pretrained(folder)
    return {"folder": str(folder), "history": history, "seconds": time.perf_counter() - started}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", help="a Mel-LLM folder: the vocoder goes to MODEL/vocoder/")
    target.add_argument("--out", help="a folder for the vocoder alone")
    parser.add_argument("--manifest", help="JSONL manifest (default: the synthetic corpus's training split)")
    parser.add_argument("--max-clips", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--segment-frames", type=int, default=32)
    parser.add_argument("--channels", type=int, default=128, help="generator width (HiFi-GAN V1: 512)")
    parser.add_argument("--resblock-kernels", type=int, nargs="+", default=[3, 7, 11])
    parser.add_argument("--disc-width", type=int, default=8, help="discriminator width (HiFi-GAN V1: 32)")
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    return train(parse_args(argv))


if __name__ == "__main__":
    main()


__all__ = ["build_generator", "load_clips", "main", "sample_batch", "train"]
