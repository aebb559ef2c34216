"""Zero-shot TTS continuation, MELD's and VALL-E's test (issue 22): each test utterance of 4-10 s gives its text and
its first 3 s of audio; the model speaks on from there, and a judge ASR transcribes the result.

    python -m training.evaluation.eval_continuation --model runs/meld_librispeech \
        --hub openslr/librispeech_asr:clean:test [--judge openai/whisper-large-v3] [--max-samples 500] \
        [--temperature 1.0 --top-k 60 --top-p 0.9 --repetition-penalty 1.1] [--out-dir DIR]
    python -m training.evaluation.eval_continuation --model DIR --manifest test.jsonl --judge ASR_MODEL ...

Speech comes from `pipeline("text-to-speech")` with `speech_prompt=` the opening (its whole 80 ms patches), so the
output is the opening followed by the model's continuation; the judge (any `pipeline("automatic-speech-recognition")`
model, Whisper-large by default, as MELD scores) transcribes that whole clip, and WER is taken against the whole
text, both through Whisper's English normaliser. The judge's WER on the recordings themselves is reported beside
it (its floor). The defaults sample as MELD's demo does (top-k 60, top-p 0.9, a repetition penalty) for discrete
latents; a continuous model takes `--temperature` only. Writes continuation.json with MELD's reported numbers.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from transformers import pipeline

from training.data import Utterance, load_hub_split, read_manifest
from training.evaluation.eval_asr import git_commit, load_clip, normalized_score, peak_levelled
from training.progress import progress


MELD_REPORTED = {"tts_wer": {"test.clean": 1.9, "test.other": 2.4}, "stt_wer": {"test.clean": 3.5, "test.other": 9.2}}
RATE = 16_000


def test_utterances(args) -> list[tuple[Utterance, np.ndarray]]:
    """Up to `max_samples` utterances of `min_seconds`-`max_seconds` with their 16 kHz audio, in the set's order."""
    if args.hub:
        from processing import load_audio

        name, config, split = args.hub.split(":")
        rows = load_hub_split(name, config or None, split, args.audio_column, streaming=True)
        source = (
            (Utterance(Path(f"{split}/{i}"), str(row[args.text_column]).strip(), i), row[args.audio_column])
            for i, row in enumerate(rows)
        )
        clips = ((u, peak_levelled(load_audio(audio, RATE))) for u, audio in source)
    else:
        clips = ((u, load_clip(u, RATE)) for u in read_manifest(args.manifest))
    chosen = []
    for utterance, audio in clips:
        if args.min_seconds <= len(audio) / RATE <= args.max_seconds:
            chosen.append((utterance, audio))
        if len(chosen) == args.max_samples:
            break
    if not chosen:
        raise ValueError(f"No test utterance lasts {args.min_seconds}-{args.max_seconds} s.")
    return chosen


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved Mel-LLM with a TTS head")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--hub", help="NAME:CONFIG:SPLIT of a Hub dataset, e.g. openslr/librispeech_asr:clean:test")
    source.add_argument("--manifest", help="local test clips (JSONL with path and transcript)")
    parser.add_argument("--audio-column", default="audio")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--judge", default="openai/whisper-large-v3", help="an ASR pipeline model (Hub id or folder)")
    parser.add_argument("--max-samples", type=int, default=500)
    parser.add_argument("--min-seconds", type=float, default=4.0)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--prompt-seconds", type=float, default=3.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=60)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--repetition-penalty", type=float, default=1.1)
    parser.add_argument("--max-new-frames", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out-dir", type=Path, default=None, help="default: <model>/continuation")
    args = parser.parse_args(argv)

    tts = pipeline("text-to-speech", model=args.model, trust_remote_code=True, device=args.device)
    options = {"temperature": args.temperature, "max_new_frames": args.max_new_frames, "seed": args.seed}
    if getattr(tts.model.config, "speech_latent", "continuous") == "discrete":
        options.update(top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty)
    judge = pipeline("automatic-speech-recognition", model=args.judge, trust_remote_code=True, device=args.device)
    opening_samples = int(args.prompt_seconds * RATE)
    texts, spoken, recorded = [], [], []
    chosen = test_utterances(args)
    for utterance, audio in progress(chosen, len(chosen), "continuing the openings"):
        texts.append(utterance.text)
        recorded.append(audio)
        spoken.append(tts(utterance.text, speech_prompt=audio[:opening_samples], **options)["audio"])
    heard = [judge({"raw": clip, "sampling_rate": RATE})["text"] for clip in spoken]
    heard_recorded = [judge({"raw": clip, "sampling_rate": RATE})["text"] for clip in recorded]
    continuation, floor = normalized_score(texts, heard), normalized_score(texts, heard_recorded)
    report = {
        "model": args.model,
        "git_commit": git_commit(),
        "judge": args.judge,
        "source": args.hub or args.manifest,
        "utterances": len(texts),
        "options": options,
        "prompt_seconds": args.prompt_seconds,
        "wer": continuation["wer"],
        "cer": continuation["cer"],
        "judge_on_recordings": {"wer": floor["wer"], "cer": floor["cer"]},
        "duration_ratio": round(sum(map(len, spoken)) / sum(map(len, recorded)), 3),
        "meld_reported": MELD_REPORTED,
        "examples": [{"text": t, "heard": h} for t, h in zip(texts[:10], heard[:10], strict=False)],
    }
    out_dir = args.out_dir or Path(args.model) / "continuation"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "continuation.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"Zero-shot continuation, {len(texts)} utterances: WER {report['wer']:.2f}% (CER {report['cer']:.2f}%); "
        f"the judge on the recordings: WER {floor['wer']:.2f}%. MELD reports TTS WER 1.9 (test-clean)."
    )
    return report


if __name__ == "__main__":
    main()
