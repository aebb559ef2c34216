"""Which held-out voices a model fails on: new speakers, new accents, or both.

    python -m benchmarks.voice_generalization --model runs/tiny_cpu [--num-beams 4] [--max-samples 300]
        [--text open|templates] [--eval-manifest PATH] [--out benchmarks/results/voice_generalization.json]

An espeak-ng voice is an accent (the language rules: how each phoneme sounds) plus a voice modifier (the speaker:
formant scaling, pitch, breathiness). A corpus's held-out texts, which no training utterance has (`--text`: the
main job's open-text corpus, or the template recipe's), are spoken again with the same rate and pitch by voices of
each of four pools (`--voices-per-text` of them per text): training voices, new modifiers on the training accents
(new speakers), training modifiers on the held-out accents (new accents), and both held out (the corpus's held-out
voices). Same texts, four pools: the WER differences are the voices' alone. The clips are
cached under the mel-llm cache (`MEL_LLM_CACHE`); prints a table and writes JSON.
"""

import argparse
import hashlib
import json
import random
from pathlib import Path

from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

from benchmarks.common import environment, write_results
from training.corpus.synthetic_corpus import (
    GENERATOR_VERSION,
    HELD_OUT_ACCENTS,
    HELD_OUT_SPEAKERS,
    HELD_OUT_VOICES,
    TRAIN_VARIANTS,
    TRAIN_VOICES,
    balanced_voices,
    cache_root,
    cached_corpus_manifests,
    synthesize_shard,
)
from training.data import read_manifest
from training.evaluation.eval_asr import evaluate_sets
from training.progress import announce


POOLS = {  # name: (accents held out?, modifiers held out?, voices)
    "training_voices": (False, False, TRAIN_VOICES),
    "new_speakers": (False, True, HELD_OUT_SPEAKERS),
    "new_accents": (True, False, [f"{a}+{v}" for a in HELD_OUT_ACCENTS for v in TRAIN_VARIANTS if v]),
    "new_accents_and_speakers": (True, True, HELD_OUT_VOICES),
}


def build_pool_manifests(source: list[dict], folder: Path, seed: int = 0, voices_per_text: int = 1) -> dict[str, Path]:
    """
    One manifest per pool: the `source` manifest rows (texts, prosody), each spoken by `voices_per_text` voices of the
    pool, every voice of a pool used equally often (`balanced_voices`, as in the corpus's held-out split).
    """
    manifests = {name: folder / name / "eval.jsonl" for name in POOLS}
    if all(path.is_file() for path in manifests.values()):
        return manifests
    source = source * voices_per_text
    announce(f"Synthesising {len(source)} held-out utterances for each of {len(POOLS)} voice pools (a minute or two)")
    for index, (name, (_, _, voices)) in enumerate(POOLS.items()):
        announce(f"voice pool {index + 1}/{len(POOLS)}: {name}")
        balanced = balanced_voices(voices, len(source), random.Random(f"voice-generalization-{seed}-{name}"))
        rows = [
            {**row, "path": f"eval/{i:06d}.wav", "voice": voice, "speaker": voice, "split": name}
            for i, (row, voice) in enumerate(zip(source, balanced, strict=True))
        ]
        (folder / name / "eval").mkdir(parents=True, exist_ok=True)
        timings = synthesize_shard((str(folder / name), seed * 100_003 + index, rows, None))
        for row, (duration, word_starts) in zip(rows, timings, strict=True):
            row.update(duration=duration, word_starts=word_starts)
        manifests[name].write_text("".join(json.dumps(row) + "\n" for row in rows))  # last: marks the pool done
    return manifests


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a Mel-LLM save_pretrained folder")
    parser.add_argument("--num-beams", type=int, default=1, help="beam width; 1 = greedy")
    parser.add_argument("--max-samples", type=int, default=None, help="first N texts of the held-out split")
    parser.add_argument("--voices-per-text", type=int, default=3, help="each text spoken by this many voices a pool")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="the corpus seed whose held-out texts are spoken")
    parser.add_argument("--text", default="open", choices=["open", "templates"], help="which recipe's corpus")
    parser.add_argument("--eval-manifest", type=Path, help="texts to speak (default: that corpus's held-out split)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/voice_generalization.json"))
    args = parser.parse_args(argv)
    env = environment("benchmarks.voice_generalization", args)
    eval_manifest = args.eval_manifest or cached_corpus_manifests(args.seed, args.text)[1]
    source = [json.loads(line) for line in eval_manifest.read_text().splitlines()][: args.max_samples]
    texts_id = hashlib.sha1(json.dumps(source).encode()).hexdigest()[:10]  # other texts get other clips
    folder = cache_root() / "voice_generalization"
    folder /= f"v{GENERATOR_VERSION}-{texts_id}-seed{args.seed}-x{args.voices_per_text}"
    manifests = build_pool_manifests(source, folder, args.seed, args.voices_per_text)
    sets = {name: read_manifest(path) for name, path in manifests.items()}
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(args.model, trust_remote_code=True)
    report = evaluate_sets(
        model, processor, sets, args.batch_size, num_beams=args.num_beams, max_new_tokens=args.max_new_tokens
    )
    results = []
    for name, (new_accents, new_speakers, _) in POOLS.items():
        scores = report["sets"][name]
        results.append(
            {
                "pool": name,
                "accents": "held out" if new_accents else "training",
                "modifiers": "held out" if new_speakers else "training",
                "n": scores["n"],
                "wer": scores["wer"],
                "cer": scores["cer"],
            }
        )
    lines = ["| voices | accents | modifiers | n | WER % | CER % |", "|---|---|---|---:|---:|---:|"]
    lines += [
        f"| {r['pool']} | {r['accents']} | {r['modifiers']} | {r['n']} | {r['wer']:.2f} | {r['cer']:.2f} |"
        for r in results
    ]
    write_results(args.out, env, results, "\n".join(lines))
    return {r["pool"]: r for r in results}


if __name__ == "__main__":
    main()
