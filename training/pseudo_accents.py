"""Made-up English accents for espeak-ng: a training accent's voice file plus a few random vowel replacements.

espeak-ng's eight English accents give most words the same phoneme string. They differ in their phoneme tables and
in `replace` rules: Scottish English says U for u:, West Midlands drops h. A model that hears five of them learns
those five and reads a sixth badly (docs/RESULTS.md, section 5). These voices keep a training accent's tables and
add 2-5 rules that swap one vowel for another, so the model hears many more ways to voice the same words and learns
to lean on the rest. The held-out accents' tables and rules are never used. `AccentRules` can also add consonant
swaps and a rhythm of the accent's own; neither did better than vowels alone (docs/RESULTS.md, section 5).

espeak-ng reads voices from its data folder, which the pip package ships read-only, so the voices go into a folder
of links to that data plus a `voices/mel-llm/` folder of their own (`pseudo_accent_data`). That folder keeps only
the West Germanic languages (English among them) of `lang/`, because espeak-ng lists at most 349 voices.
"""

import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from training.synthetic_speech import default_data_path


# Training accents (synthetic_corpus.TRAIN_ACCENTS) → their voice files in espeak-ng's `lang/gmw/`.
ACCENT_FILES = {"en-us": "en-US", "en": "en", "en-gb-x-rp": "en-GB-x-rp", "en-029": "en-029", "en-gb-x-gbclan": "en-GB-x-gbclan"}  # fmt: skip
# Vowel phonemes every training accent's table has (collected with espeak_TextToPhonemes over the corpus vocabulary).
VOWELS = ["0", "3", "3:", "@", "@L", "A:", "A@", "E", "I", "I2", "O:", "O@", "U", "V", "a", "a#", "aI", "aI@", "aU", "aa", "e@", "eI", "i", "i:", "i@", "o@", "oU", "u:"]  # fmt: skip
# Consonant changes real accents make, none of them a held-out accent's rule (West Midlands' dropped h is left out):
# th-stopping (Caribbean), th-fronting (London), g-dropping, v/w merging, devoicing of z.
CONSONANT_SWAPS = [("T", "t"), ("D", "d"), ("T", "f"), ("D", "v"), ("N", "n"), ("v", "w"), ("w", "v"), ("z", "s")]
# espeak-ng's English syllable lengths by stress level (tr_languages.c), jittered when a base voice sets none.
ENGLISH_STRESS_LENGTHS = (182, 140, 220, 220, 0, 0, 248, 275)
FOLDER = "mel-llm"  # voices/mel-llm/p000, ...: voice names "mel-llm/p000"
MAX_VOICES = 200  # espeak-ng lists at most 349 voices: 13 West Germanic languages + 104 modifiers + these


@dataclass(frozen=True)
class AccentRules:
    """How far a made-up accent departs from its base accent: ranges (min, max) of random vowel and consonant
    `replace` rules, and a random scaling of its syllable lengths by stress level (a rhythm of its own) by up to
    +-`stress_jitter`. The defaults are the corpus's made-up accents as first built, vowels only."""

    vowel_swaps: tuple[int, int] = (2, 5)
    consonant_swaps: tuple[int, int] = (0, 0)
    stress_jitter: float = 0.0

    def __post_init__(self) -> None:
        for name, (low, high), most in (("vowel", self.vowel_swaps, len(VOWELS)), ("consonant", self.consonant_swaps, len(CONSONANT_SWAPS))):  # fmt: skip
            if not 0 <= low <= high <= most:
                raise ValueError(f"pseudo accents: {name} swaps {(low, high)} must be a range within 0..{most}")
        if not 0.0 <= self.stress_jitter < 1.0:
            raise ValueError(f"pseudo accents: stress_jitter={self.stress_jitter} must be in [0, 1)")

    def changes(self) -> dict:
        """The fields that differ from the defaults, as JSON reads them back: what a corpus cache key records (only
        the changes, so the keys of corpora built before these options stay valid)."""
        default = asdict(DEFAULT_RULES)
        changed = {key: value for key, value in asdict(self).items() if value != default[key]}
        return {key: list(value) if isinstance(value, tuple) else value for key, value in changed.items()}


DEFAULT_RULES = AccentRules()


def voice_file(base_text: str, name: str, rng: random.Random, rules: AccentRules = DEFAULT_RULES) -> str:
    """`base_text` (a voice file) renamed to `name`, plus random `replace 00` rules and syllable lengths (`rules`)."""
    lines = [line for line in base_text.splitlines() if not line.startswith("name")]
    sources = rng.sample(VOWELS, rng.randint(*rules.vowel_swaps))
    added = [f"replace 00 {vowel} {rng.choice([v for v in VOWELS if v != vowel])}" for vowel in sources]
    # Each option below draws only when on: a draw would move the rng, and the default accents must stay as first built.
    if rules.consonant_swaps != (0, 0):
        # One rule per consonant: of two drawn swaps of the same one (T→t, T→f), the first stays.
        swaps = dict(reversed(rng.sample(CONSONANT_SWAPS, rng.randint(*rules.consonant_swaps))))
        added += [f"replace 00 {source} {target}" for source, target in swaps.items()]
    if rules.stress_jitter:
        base_lengths = next((line.split()[1:] for line in lines if line.startswith("stressLength")), None)
        lengths = [int(v) for v in base_lengths] if base_lengths else list(ENGLISH_STRESS_LENGTHS)
        jitter = [round(v * rng.uniform(1 - rules.stress_jitter, 1 + rules.stress_jitter)) for v in lengths]
        added.append("stressLength " + " ".join(map(str, jitter)))  # a later line overrides the base's
    return "\n".join([f"name {name}", *lines, *added]) + "\n"


def pseudo_accent_names(count: int) -> list[str]:
    """The voice names of `count` made-up accents (`mel-llm/p000`, ...), sorted; the same whatever the seed and rules,
    so a corpus plan needs no voice files."""
    if not 0 < count <= MAX_VOICES:
        raise ValueError(f"pseudo accents: count={count} must be in 1..{MAX_VOICES} (espeak-ng's voice list is full)")
    return [f"{FOLDER}/p{index:03d}" for index in range(count)]


def pseudo_accent_voices(count: int, seed: int, rules: AccentRules = DEFAULT_RULES) -> dict[str, str]:
    """`count` voice names → voice-file texts, the same for a given seed and `rules`."""
    source = default_data_path() / "lang" / "gmw"
    rng = random.Random(f"mel-llm-pseudo-accents-{seed}")
    voices = {}
    for name in pseudo_accent_names(count):
        base = rng.choice(sorted(ACCENT_FILES))
        voices[name] = voice_file((source / ACCENT_FILES[base]).read_text(), name, rng, rules)
    return voices


def pseudo_accent_data(folder: Path, voices: dict[str, str]) -> Path:
    """
    espeak-ng data at `folder`: the bundled data linked (copied where links fail), `lang/` cut to its West Germanic
    languages, and `voices` written under `voices/`. Rewritten in full each call, so it holds exactly `voices`.
    """
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "voices" / FOLDER).mkdir(parents=True)
    (folder / "lang").mkdir()
    source = default_data_path()
    for entry in [*source.iterdir(), *(source / "voices").iterdir(), source / "lang" / "gmw"]:
        target = folder / entry.relative_to(source)
        if entry.name in ("voices", "lang"):
            continue
        try:
            target.symlink_to(entry, target_is_directory=entry.is_dir())
        except OSError:  # no symlinks (e.g. Windows without developer mode)
            (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, target)
    for name, text in voices.items():
        (folder / "voices" / name).write_text(text)
    return folder


__all__ = [
    "ACCENT_FILES",
    "CONSONANT_SWAPS",
    "DEFAULT_RULES",
    "MAX_VOICES",
    "VOWELS",
    "AccentRules",
    "pseudo_accent_data",
    "pseudo_accent_names",
    "pseudo_accent_voices",
    "voice_file",
]
