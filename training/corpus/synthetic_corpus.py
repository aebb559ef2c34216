"""A default training corpus that needs no download: seeded English text spoken locally by espeak-ng.

    python -m training.corpus.synthetic_corpus --out DIR --num-train 3000 --num-eval 300 [--voice en-us]

Texts are lower-case words without punctuation (digit strings, spelled-out numbers/times/dates, smart-home commands,
template sentences over a few hundred words), so WER measures recognition, not formatting. Training utterances use
`TRAIN_VOICES`. Two held-out splits measure two kinds of generalisation: `eval` uses `HELD_OUT_VOICES`, whose accents
*and* voice modifiers never occur in training (new accents); `eval_speakers` uses `HELD_OUT_SPEAKERS`, the training
accents with the held-out voice modifiers (new speakers of known accents).
Each utterance gets its own speaking rate, pitch and pitch range. Audio: 16 kHz mono 16-bit WAV, lightly trimmed,
peak-normalised; manifests load with `training.data.read_manifest`.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import re
import shutil
import time
from importlib import metadata
from pathlib import Path

from training.corpus.defaults import (
    DEFAULT_NUM_EVAL,
    DEFAULT_NUM_TRAIN,
    DEFAULT_PSEUDO_ACCENTS,
    PSEUDO_ACCENT_SHARE,
    PSEUDO_ACCENT_VOICES,
)
from training.corpus.pseudo_accents import (
    DEFAULT_RULES,
    AccentRules,
    pseudo_accent_data,
    pseudo_accent_names,
    pseudo_accent_voices,
)
from training.corpus.synthetic_speech import EspeakSynthesizer, to_training_clip_with_offset, write_wav
from training.progress import announce, progress


GENERATOR_VERSION = 3  # 3: word start times in the manifest. Bump whenever texts, voices or audio processing change: invalidates every cache
SAMPLING_RATE = 16_000
SHARD_SIZE = 500  # utterances per fresh synthesis process; fixed so output never depends on the worker count
UTTERANCES_PER_SECOND_PER_PROCESS = 80  # measured here: 16300 utterances in 92 s on 2 processes
MAX_WORDS = 12

_WORD_LISTS = {  # a few hundred words in all: small enough for a CPU-sized model to learn
    "ones": "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    " seventeen eighteen nineteen",
    "tens": "_ _ twenty thirty forty fifty sixty seventy eighty ninety",
    "ordinals": "_ first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth"
    " fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth",
    "months": "january february march april may june july august september october november december",
    "noun": "cat dog bird fish horse cow sheep rabbit mouse fox bear lion tiger monkey frog duck goat owl snake book"
    " pen cup box bag hat coat shoe key lamp chair table door clock phone ball kite boat train car bus bike plane"
    " apple bread cake egg cheese milk tea soup orange banana lemon flower tree river mountain letter picture song"
    " ticket map umbrella pencil basket bottle",
    "adj": "big small old new happy sad quick slow tall short hot cold warm soft loud quiet heavy clean dirty little"
    " young bright dark sweet empty full lucky funny busy strange",
    "colour": "red blue green yellow black white brown pink purple grey silver golden",
    "vt": "saw found took made painted washed bought sold carried pushed pulled opened dropped kicked caught chased"
    " followed watched liked wanted needed moved lifted hid built cleaned fixed",
    "vi": "ran jumped slept sat stood walked danced sang swam laughed smiled waited fell cried played worked",
    "place": "kitchen bedroom garden park school office station market library beach forest city village garage"
    " hallway bathroom",
    "name": "anna ben clara david emma frank grace henry james kate lucy mark nina oscar paul sarah tom zoe",
    "when": "today yesterday tomorrow tonight now later again",
    "room": "kitchen bedroom bathroom hallway garage office garden",
    "device": "lights heater fan radio television oven kettle",
    "onoff": "on off",
    "updown": "up down",
    "glue": "an hundred thousand oh quarter past half to thirtieth of dollars and cents",  # numbers, times, money
}
WORDS = {slot: text.split() for slot, text in _WORD_LISTS.items()}
ONES, TENS, ORDINALS, MONTHS, GLUE = (WORDS.pop(key) for key in ("ones", "tens", "ordinals", "months", "glue"))
SENTENCES = """
the {adj} {noun} {vi}
the {colour} {noun} {vi} in the {place}
{name} {vt} the {adj} {noun}
{name} {vt} a {colour} {noun} {when}
the {noun} is {adj}
the {noun} was {colour}
{name} and {name} {vi} in the {place} {when}
my {noun} is in the {place}
did you see the {adj} {noun}
please give me the {colour} {noun}
{count} {colour} {nouns}
there are {count} {adj} {nouns} here
the {adj} {noun} {vt} the {colour} {noun} in the {place}
{name} {vi}
{noun}
{adj} {nouns}
we {vt} {count} {nouns} at the {place} {when}
where is the {adj} {noun}
i like {colour} {nouns}
""".strip().splitlines()  # one template per line
COMMANDS = """
turn the {device} {onoff}
turn the {device} {onoff} in the {room}
turn {updown} the volume
set a timer for {count} minutes
set an alarm for {clock}
play some music in the {room}
call {name}
send a message to {name}
open the {room} door
lock the front door
what is the weather {when}
what time is it
stop
pause
next song
go back
remind me to buy {nouns} {when}
add {nouns} to the shopping list
dim the lights in the {room}
switch {onoff} the {device}
""".strip().splitlines()  # one template per line
MASS_NOUNS = {"bread", "cheese", "milk", "tea", "soup"}  # never pluralised
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
RATE_WPM, PITCH, PITCH_RANGE = (130, 210), (30, 70), (20, 80)
SINGLE_VOICE_PROSODY = {"rate_wpm": 170, "pitch": 50, "pitch_range": 50}  # the middle of the ranges above


def cardinal(n: int) -> str:
    """0-9999 in words, US style without "and": 4012 → "four thousand twelve"."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    big, unit = (n // 1000, "thousand") if n >= 1000 else (n // 100, "hundred")
    rest = n % 1000 if n >= 1000 else n % 100
    return f"{ONES[big]} {unit}" + ("" if rest == 0 else " " + cardinal(rest))


def ordinal(n: int) -> str:
    """1-31 in words: 23 → "twenty third"."""
    return ORDINALS[n] if n <= 20 else ("thirtieth" if n == 30 else f"{TENS[n // 10]} {ORDINALS[n % 10]}")


def year(n: int) -> str:
    """1900-2099 as spoken: "nineteen oh five", "two thousand seven", "twenty twenty five"."""
    high, low = divmod(n, 100)
    if 2000 <= n < 2010:
        return "two thousand" + ("" if low == 0 else " " + ONES[low])
    return cardinal(high) + (" hundred" if low == 0 else (" oh " if low < 10 else " ") + cardinal(low))


def clock_time(rng: random.Random) -> str:
    hour, minute = rng.randint(1, 12), rng.choice([0, 5, 10, 15, 20, 30, 40, 45, rng.randint(1, 59)])
    if rng.random() < 0.3:
        return rng.choice(["quarter past", "half past", "quarter to"]) + f" {ONES[hour]}"
    return ONES[hour] + ("" if minute == 0 else (" oh " if minute < 10 else " ") + cardinal(minute))


def _fill(template: str, rng: random.Random) -> str:
    def slot(match: re.Match) -> str:
        name = match.group(1)
        if name == "nouns":
            return plural(rng.choice([n for n in WORDS["noun"] if n not in MASS_NOUNS]))
        if name == "count":
            return cardinal(rng.randint(2, 20))
        if name == "clock":
            return clock_time(rng)
        return rng.choice(WORDS[name])

    words = re.sub(r"\{(\w+)\}", slot, template).split()
    return " ".join(
        "an" if w == "a" and nxt[0] in "aeiou" else w for w, nxt in zip(words, [*words[1:], "x"], strict=True)
    )


def plural(noun: str) -> str:
    irregular = {"mouse": "mice", "sheep": "sheep", "fish": "fish"}
    if noun in irregular:
        return irregular[noun]
    return noun + ("es" if noun.endswith(("s", "x", "sh", "ch")) else "s")


def generate_text(rng: random.Random) -> tuple[str, str]:
    """One utterance `(kind, text)`: kind is "digits", "number", "command" or "sentence"; 1-12 words."""
    while True:
        kind = rng.choices(["digits", "number", "command", "sentence"], weights=[25, 20, 25, 30])[0]
        if kind == "digits":
            text = " ".join(ONES[rng.randint(0, 9)] for _ in range(rng.randint(1, 10)))
        elif kind == "number":
            form = rng.randrange(5)
            month = rng.choice(MONTHS)
            text = [
                cardinal(rng.choice([rng.randint(0, 99), rng.randint(100, 999), rng.randint(1000, 9999)])),
                clock_time(rng),
                rng.choice(
                    [f"{month} {ordinal(rng.randint(1, 31))}", f"the {ordinal(rng.randint(1, 31))} of {month}"]
                ),
                f"{month} {year(rng.randint(1900, 2099))}" if rng.random() < 0.5 else year(rng.randint(1900, 2099)),
                f"{cardinal(rng.randint(2, 999))} dollars"
                + (f" and {cardinal(rng.randint(2, 99))} cents" if rng.random() < 0.4 else ""),
            ][form]
        else:
            text = _fill(rng.choice(COMMANDS if kind == "command" else SENTENCES), rng)
        if 1 <= len(text.split()) <= MAX_WORDS:
            return kind, text


def vocabulary() -> list[str]:
    """Every word the generator can emit (e.g. to train a tokenizer on)."""
    words = {w for values in WORDS.values() for w in values} | {*ONES, *TENS[2:], *ORDINALS[1:], *MONTHS, *GLUE}
    words |= {plural(n) for n in WORDS["noun"] if n not in MASS_NOUNS}
    for template in SENTENCES + COMMANDS:
        words |= set(re.sub(r"\{\w+\}", " ", template).split())
    return sorted(words)


def balanced_voices(voices: list[str], count: int, rng: random.Random) -> list[str]:
    """`count` voices in a shuffled order, every voice used equally often (once each when count >= len(voices)):
    which voices a random draw favours moves a few-hundred-clip WER by several points."""
    balanced = [voices[i % len(voices)] for i in range(count)]
    rng.shuffle(balanced)
    return balanced


def plan_corpus(
    num_train: int,
    num_eval: int,
    seed: int,
    voice: str | None = None,
    pseudo_accent_share: float = 0.0,
    pseudo_accent_voices_count: int = PSEUDO_ACCENT_VOICES,
) -> list[dict]:
    """
    Manifest rows (minus duration) for every split; held-out texts avoid every training text. With `voice`, a train
    and an eval split use that one voice at one rate and pitch (`SINGLE_VOICE_PROSODY`): a single-speaker corpus, as
    a TTS model without a speaker prompt needs (over many voices it can only learn their blurred average). Without
    it, `eval_speakers` (`num_eval` rows) follows. Each split draws from its own rng, so adding one changes no other.
    `pseudo_accent_share` of the training rows then get one of `pseudo_accent_voices_count` made-up accents (with
    the row's voice modifier), from an rng of their own: the texts and prosody stay as they were.
    """
    rows, train_texts = [], set()
    splits = (("train", num_train, TRAIN_VOICES), ("eval", num_eval, HELD_OUT_VOICES))
    if voice is not None:
        splits = tuple((split, count, [voice]) for split, count, _ in splits)
    else:
        splits += (("eval_speakers", num_eval, HELD_OUT_SPEAKERS),)
    for split, count, voices in splits:
        rng = random.Random(f"mel-llm-synthetic-{seed}-{split}")
        for index, speaker in enumerate(balanced_voices(voices, count, rng)):
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
) -> tuple[Path, Path]:
    """
    Synthesise (or reuse) the corpus and return `(train_manifest, eval_manifest)`; a multi-voice corpus also writes
    `SPEAKERS_MANIFEST` next to them (see `speakers_manifest`); `voice` makes it single-speaker (see `plan_corpus`);
    `pseudo_accent_share` of a multi-voice corpus's training utterances get made-up accents (`pseudo_accent_rules`),
    whose espeak-ng voice data the corpus keeps in `espeak-ng-data/`.
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
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / folder
    manifests = (root / "train.jsonl", root / "eval.jsonl")
    splits = {"train": manifests[0], "eval": manifests[1]}
    if voice is None:
        splits["eval_speakers"] = root / SPEAKERS_MANIFEST
    info_path = root / "corpus_info.json"
    if info_path.is_file() and all(m.is_file() for m in splits.values()) and json.loads(info_path.read_text()) == info:
        return manifests
    for stale in (info_path, *splits.values()):
        stale.unlink(missing_ok=True)
    for split in splits:
        shutil.rmtree(root / split, ignore_errors=True)
        (root / split).mkdir(parents=True)
    rows = plan_corpus(num_train, num_eval, seed, voice, pseudo_accent_share, pseudo_accent_voices_count)
    data_path = None
    if "pseudo_accents" in info:  # made-up accents need their own espeak-ng data folder
        voices = pseudo_accent_voices(pseudo_accent_voices_count, seed, pseudo_accent_rules)
        data_path = str(pseudo_accent_data(root / "espeak-ng-data", voices))
    shards = [rows[i : i + SHARD_SIZE] for i in range(0, len(rows), SHARD_SIZE)]
    jobs = [(str(root), seed * 100_003 + number, shard, data_path) for number, shard in enumerate(shards)]
    workers = max(1, min(num_workers or os.cpu_count() or 1, len(jobs)))
    minutes = max(1, round(len(rows) / (UTTERANCES_PER_SECOND_PER_PROCESS * workers) / 60))
    announce(f"Synthesising {len(rows)} utterances with espeak-ng into {root} (about {minutes} min; cached after)")
    with multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=1) as pool:
        shards_done = progress(pool.imap(synthesize_shard, jobs, chunksize=1), len(jobs), "espeak-ng corpus shards")
        timings = [t for shard in shards_done for t in shard]
    for row, (duration, word_starts) in zip(rows, timings, strict=True):
        row["duration"] = duration
        row["word_starts"] = word_starts  # for word-interleaved TTS (MelLLMProcessor.tts_interleave_words)
    for split, manifest in splits.items():
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows if r["split"] == split))
    info_path.write_text(json.dumps(info, indent=2) + "\n")  # written last: marks the build complete
    return manifests


def speakers_manifest(eval_manifest: Path) -> Path:
    """The held-out-speakers manifest (`eval_speakers` split) of the multi-voice corpus whose eval manifest this is."""
    return Path(eval_manifest).with_name(SPEAKERS_MANIFEST)


def cached_corpus_manifests(seed: int = 0) -> tuple[Path, Path]:
    """`(train, eval)` manifests of the default corpus (the main job's sizes): reused from the cache when the main
    job or any tool built it already, so readers such as the TTS and peer benchmarks score the same clips."""
    return build_corpus(num_train=DEFAULT_NUM_TRAIN, num_eval=DEFAULT_NUM_EVAL, seed=seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="corpus folder (default: the cache, see default_cache_dir)")
    parser.add_argument("--num-train", type=int, default=DEFAULT_NUM_TRAIN)
    parser.add_argument("--num-eval", type=int, default=DEFAULT_NUM_EVAL)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--voice", default=None, help="one voice for every utterance (e.g. en-us): a TTS corpus")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    manifests = build_corpus(args.out, args.num_train, args.num_eval, args.seed, args.num_workers, args.voice)
    seconds = time.perf_counter() - started
    for manifest in [*manifests, *([speakers_manifest(manifests[1])] if args.voice is None else [])]:
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
        hours = sum(r["duration"] for r in rows) / 3600
        print(f"{manifest}: {len(rows)} utterances, {hours:.3f} h, {len({r['voice'] for r in rows})} voices")
    print(f"took {seconds:.1f} s (a reused cache takes ~0 s); vocabulary {len(vocabulary())} words")
    if args.voice is None:
        print(f"training voices ({len(TRAIN_VOICES)}): {' '.join(TRAIN_VOICES)}")
        print(f"held-out voices, new accents ({len(HELD_OUT_VOICES)}): {' '.join(HELD_OUT_VOICES)}")
        print(f"held-out voices, known accents ({len(HELD_OUT_SPEAKERS)}): {' '.join(HELD_OUT_SPEAKERS)}")


__all__ = [
    "HELD_OUT_SPEAKERS",
    "HELD_OUT_VOICES",
    "PSEUDO_ACCENT_SHARE",
    "PSEUDO_ACCENT_VOICES",
    "TRAIN_VOICES",
    "balanced_voices",
    "build_corpus",
    "cached_corpus_manifests",
    "generate_text",
    "plan_corpus",
    "speakers_manifest",
    "synthesize_shard",
    "vocabulary",
]


if __name__ == "__main__":
    main()
