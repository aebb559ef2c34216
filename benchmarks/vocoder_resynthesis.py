"""How much intelligibility a vocoder keeps (issue 21): recorded clips → log-mel → vocoder → Whisper tiny.en.

    python -m benchmarks.vocoder_resynthesis --manifest held_out.jsonl [--hifigan FOLDER ...] [--max-samples 40]

The TTS model can sound no better than its vocoder turning perfect log-mel back into audio, so each vocoder
resynthesises the same recorded clips from their own log-mel (the feature extractor's), and Whisper tiny.en (the
peers extra) transcribes them beside the recordings themselves. Vocoders: Griffin-Lim (the default without a trained
one) and each `--hifigan` folder (a `train_vocoder --out` folder, or a model folder with `vocoder/`). Writes JSON
and prints a table: WER/CER per vocoder and the seconds it took per second of audio.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from transformers import SpeechT5HifiGan

from benchmarks.common import REPO_ROOT, environment, write_results
from benchmarks.tts_eval import judged, whisper_transcriber
from processing import MelLLMFeatureExtractor
from processing.vocoder_mel_llm import VOCODER_SUBFOLDER, MelLLMGriffinLim, MelLLMHifiGan
from training.data import read_manifest
from training.evaluation.eval_asr import load_clip


DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "vocoder_resynthesis.json"


def hifigan(folder: Path) -> MelLLMHifiGan:
    """The HiFi-GAN saved in `folder` (train_vocoder --out) or in `folder/vocoder/` (bundled with a model)."""
    nested = folder / VOCODER_SUBFOLDER
    return MelLLMHifiGan(SpeechT5HifiGan.from_pretrained(nested if nested.is_dir() else folder)).eval()


def resynthesised(vocoder, extractor: MelLLMFeatureExtractor, clips: list[np.ndarray]) -> tuple[list, float]:
    """Each clip through its log-mel and `vocoder`; and the vocoder's seconds per second of audio."""
    out, seconds = [], 0.0
    for clip in clips:
        features = extractor([clip], sampling_rate=extractor.sampling_rate, return_tensors="pt")["input_features"][0]
        began = time.perf_counter()
        with torch.inference_mode():
            out.append(vocoder(features).numpy().astype(np.float32))
        seconds += time.perf_counter() - began
    return out, seconds / (sum(map(len, clips)) / extractor.sampling_rate)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="recorded clips (JSONL with path and transcript)")
    parser.add_argument("--hifigan", type=Path, nargs="*", default=[], help="trained HiFi-GAN folders to compare")
    parser.add_argument("--max-samples", type=int, default=40)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    env = environment("benchmarks.vocoder_resynthesis", args, skip=("hifigan",))
    env["hifigan"] = [str(p) for p in args.hifigan]
    extractor = MelLLMFeatureExtractor()
    utterances = read_manifest(args.manifest)
    keep = np.linspace(0, len(utterances) - 1, min(args.max_samples, len(utterances))).astype(int)
    chosen = [utterances[i] for i in keep]
    clips = [load_clip(u, extractor.sampling_rate) for u in chosen]
    texts = [u.text for u in chosen]
    vocoders = {"Griffin-Lim": MelLLMGriffinLim(extractor), **{f"HiFi-GAN {p}": hifigan(p) for p in args.hifigan}}
    transcribe = whisper_transcriber()
    recorded = judged(transcribe, clips, texts)
    results = [{"vocoder": "none (the recordings)", "wer": recorded["wer"], "cer": recorded["cer"]}]
    for name, vocoder in vocoders.items():
        audio, cost = resynthesised(vocoder, extractor, clips)
        heard = judged(transcribe, audio, texts)
        results.append({"vocoder": name, "wer": heard["wer"], "cer": heard["cer"], "seconds_per_audio_second": cost})
    rows = ["| vocoder | WER % | CER % | s per audio s |", "|---|---:|---:|---:|"]
    rows += [
        f"| {r['vocoder']} | {r['wer']} | {r['cer']} | {r.get('seconds_per_audio_second', 0):.3f} |" for r in results
    ]
    write_results(args.out, env, results, "\n".join(rows))
    return {"results": results}


if __name__ == "__main__":
    main()
