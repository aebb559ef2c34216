"""Isolated spoken digits from every espeak-ng English voice, band-limited to 4 kHz like FSDD's 8 kHz recordings.

    python -m benchmarks.synthetic_digits --out DIR [--num-clips 4000] [--seed 0]

Writes DIR/manifest.jsonl for `--extra_train_manifests`: the FSDD experiment in docs/RESULTS.md (section 5) that
adds many synthetic speakers to FSDD's four training speakers. All eight accents take part, held-out ones included:
FSDD's test speakers are real people, so no espeak-ng voice is held out here.
"""

import argparse
import json
import random
from pathlib import Path

import soxr

from training.corpus.synthetic_corpus import HELD_OUT_ACCENTS, HELD_OUT_VARIANTS, TRAIN_ACCENTS, TRAIN_VARIANTS
from training.corpus.synthetic_speech import EspeakSynthesizer, to_training_clip, write_wav
from training.corpus.template_text import ONES
from training.progress import announce, progress


FSDD_RATE = 8_000


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--num-clips", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    accents, variants = TRAIN_ACCENTS + HELD_OUT_ACCENTS, TRAIN_VARIANTS + HELD_OUT_VARIANTS
    voices = [accent + (f"+{variant}" if variant else "") for accent in accents for variant in variants]
    rng, synthesizer = random.Random(args.seed), EspeakSynthesizer()
    synthesizer.seed(args.seed)
    (args.out / "clips").mkdir(parents=True, exist_ok=True)
    rows = []
    announce(f"Synthesising {args.num_clips} spoken digits with espeak-ng into {args.out} (about 1 s per 50 clips)")
    for index in progress(range(args.num_clips), args.num_clips, "espeak-ng digits"):
        word, voice = ONES[index % 10], rng.choice(voices)
        audio = synthesizer.synthesize(word, voice, rng.randint(110, 220), rng.randint(20, 80), rng.randint(10, 90))
        clip = to_training_clip(soxr.resample(audio, synthesizer.sampling_rate, FSDD_RATE), FSDD_RATE, 16_000)
        path = f"clips/{index:06d}.wav"
        write_wav(args.out / path, clip, 16_000)
        rows.append({"path": path, "transcript": word, "voice": voice, "duration": round(len(clip) / 16_000, 3)})
    manifest = args.out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"{manifest}: {len(rows)} clips, {sum(r['duration'] for r in rows) / 60:.1f} min")
    return manifest


if __name__ == "__main__":
    main()
