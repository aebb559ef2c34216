"""Made-up English accents for espeak-ng: a training accent's voice file plus a few random vowel replacements.

espeak-ng's eight English accents give most words the same phoneme string. They differ in their phoneme tables and
in `replace` rules: Scottish English says U for u:, West Midlands drops h. A model that hears five of them learns
those five and reads a sixth badly (docs/RESULTS.md, section 5). These voices keep a training accent's tables and
add 2-5 rules that swap one vowel for another, so the model hears many more ways to voice the same words and learns
to lean on the rest. The held-out accents' tables and rules are never used. (Consonant swaps and a rhythm of each
accent's own did no better than vowels alone; docs/RESULTS.md, section 5, names the commit that has them.)

espeak-ng reads voices from its data folder, which the pip package ships read-only, so the voices go into a folder
of links to that data plus a `voices/mel-llm/` folder of their own (`pseudo_accent_data`). That folder keeps only
the West Germanic languages (English among them) of `lang/`, because espeak-ng lists at most 349 voices.
"""

import random
import shutil
from pathlib import Path

from training.corpus.defaults import DEFAULT_RULES, VOWELS, AccentRules
from training.corpus.synthetic_speech import default_data_path


# Training accents (synthetic_corpus.TRAIN_ACCENTS) → their voice files in espeak-ng's `lang/gmw/`.
ACCENT_FILES = {
    "en-us": "en-US",
    "en": "en",
    "en-gb-x-rp": "en-GB-x-rp",
    "en-029": "en-029",
    "en-gb-x-gbclan": "en-GB-x-gbclan",
}
FOLDER = "mel-llm"  # voices/mel-llm/p000, ...: voice names "mel-llm/p000"
MAX_VOICES = 200  # espeak-ng lists at most 349 voices: 13 West Germanic languages + 104 modifiers + these


def voice_file(base_text: str, name: str, rng: random.Random, rules: AccentRules = DEFAULT_RULES) -> str:
    """`base_text` (a voice file) renamed to `name`, plus random vowel `replace 00` rules (`rules`)."""
    lines = [line for line in base_text.splitlines() if not line.startswith("name")]
    sources = rng.sample(VOWELS, rng.randint(*rules.vowel_swaps))
    added = [f"replace 00 {vowel} {rng.choice([v for v in VOWELS if v != vowel])}" for vowel in sources]
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
    "DEFAULT_RULES",
    "MAX_VOICES",
    "VOWELS",
    "AccentRules",
    "pseudo_accent_data",
    "pseudo_accent_names",
    "pseudo_accent_voices",
    "voice_file",
]
