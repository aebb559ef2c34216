"""Speak text with a trained Mel-LLM: one WAV, and optionally a PNG of the predicted (vs reference) log-mel.

    python -m training.tools.tts --model runs/tts_cpu --text "turn the lights on" --out out.wav [--png mel.png]
        [--reference ref.wav] [--seed 0] [--temperature 1.0] [--max-new-frames 1000] [--stop-threshold 0.5]

Vocoder: the HiFi-GAN in `MODEL/vocoder/` when present, else Griffin-Lim. With `--reference` the PNG (default:
next to the WAV) shows the reference clip's log-mel above the prediction.
"""

import argparse
from pathlib import Path

import numpy as np
import soundfile

from modeling_mel_llm import MelLLMForSpeechLM
from processing import MelLLMProcessor, MelLLMTextToSpeechPipeline, load_audio


def load_tts_pipeline(model_dir: str | Path, device: str | None = None) -> MelLLMTextToSpeechPipeline:
    """The TTS pipeline on a local folder, from this package's classes (no remote code needed)."""
    model = MelLLMForSpeechLM.from_pretrained(model_dir).eval()
    processor = MelLLMProcessor.from_pretrained(model_dir)
    return MelLLMTextToSpeechPipeline(
        model=model,
        processor=processor,
        tokenizer=processor.tokenizer,
        feature_extractor=processor.feature_extractor,
        device=device,
    )


def plot_mels(path: str | Path, predicted: np.ndarray, reference: np.ndarray | None = None, title: str = "") -> None:
    """Log-mel images (frames across, bins up) on one shared colour scale: reference on top when given."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    panels = [("reference", reference)] if reference is not None else []
    panels.append(("predicted", predicted))
    low = min(float(p.min()) for _, p in panels)
    high = max(float(p.max()) for _, p in panels)
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), squeeze=False)
    for axis, (name, mel) in zip(axes[:, 0], panels, strict=True):
        axis.imshow(mel.T, origin="lower", aspect="auto", vmin=low, vmax=high, interpolation="nearest")
        axis.set_ylabel(f"{name}\nmel bin")
    axes[-1, 0].set_xlabel("frame (10 ms)")
    if title:
        axes[0, 0].set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a save_pretrained folder with a TTS head")
    parser.add_argument("--text", required=True)
    parser.add_argument("--out", required=True, help="WAV path")
    parser.add_argument("--png", help="also plot the predicted log-mel here")
    parser.add_argument("--reference", help="a recording of the text, plotted above the prediction")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-new-frames", type=int, default=1000)
    parser.add_argument("--stop-threshold", type=float, default=0.5)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    tts = load_tts_pipeline(args.model, args.device)
    result = tts(
        args.text,
        seed=args.seed,
        temperature=args.temperature,
        max_new_frames=args.max_new_frames,
        stop_threshold=args.stop_threshold,
        return_mel=True,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(out, result["audio"], result["sampling_rate"])
    png = args.png or (out.with_suffix(".png") if args.reference else None)
    if png:
        reference = None
        if args.reference:
            extractor = tts.processor.feature_extractor
            clip = load_audio(args.reference, extractor.sampling_rate)
            reference = extractor([clip], sampling_rate=extractor.sampling_rate)["input_features"][0].numpy()
        plot_mels(png, result["mel"], reference, title=args.text)
    seconds = len(result["audio"]) / result["sampling_rate"]
    print(f"wrote {out} ({seconds:.2f} s)" + (f" and {png}" if png else ""))
    return result


if __name__ == "__main__":
    main()


__all__ = ["load_tts_pipeline", "main", "plot_mels"]
