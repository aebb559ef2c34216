"""training.corpus.pseudo_accents: made-up accents from the training accents' voice files, and speaking them."""

import multiprocessing
import re

import numpy as np
import pytest
import soundfile

from training.corpus.pseudo_accents import (
    ACCENT_FILES,
    MAX_VOICES,
    VOWELS,
    AccentRules,
    pseudo_accent_data,
    pseudo_accent_voices,
)
from training.corpus.synthetic_corpus import synthesize_shard
from training.corpus.synthetic_speech import EspeakSynthesizer, default_data_path


TEXT = "the big bottle wanted the purple ball in the bathroom five nine eight three two"


def split_voice(text: str) -> tuple[str, list[str]]:
    """(the training accent a made-up voice file starts from, the lines added after that accent's own lines)."""
    lines = text.splitlines()[1:]  # without its "name" line
    for accent, file in ACCENT_FILES.items():
        lines_of_base = (default_data_path() / "lang" / "gmw" / file).read_text().splitlines()
        base = [line for line in lines_of_base if not line.startswith("name")]
        if lines[: len(base)] == base:
            return accent, lines[len(base) :]
    raise AssertionError(f"no training accent starts {text!r}")


def test_voices_are_a_training_accent_plus_random_vowel_swaps():
    voices = pseudo_accent_voices(20, seed=1)
    assert voices == pseudo_accent_voices(20, seed=1)
    assert voices != pseudo_accent_voices(20, seed=2)
    bases = set()
    for name, text in voices.items():
        assert text.startswith(f"name {name}\n")
        base, added = split_voice(text)
        bases.add(base)
        rules = [re.fullmatch(r"replace 00 (\S+) (\S+)", line) for line in added]
        assert 2 <= len(rules) <= 5
        assert all(rule and rule[1] in VOWELS and rule[2] in VOWELS and rule[1] != rule[2] for rule in rules)
        assert not re.search(r"phonemes en-(sc|us-nyc|wm)\b", text)  # never a held-out accent's tables
    assert len(bases) >= 3
    with pytest.raises(ValueError, match="voice list"):
        pseudo_accent_voices(MAX_VOICES + 1, seed=0)


def test_rules_name_an_impossible_range():
    assert AccentRules().changes() == {}
    assert AccentRules(vowel_swaps=(1, 2)).changes() == {"vowel_swaps": [1, 2]}
    with pytest.raises(ValueError, match="vowel swaps"):
        AccentRules(vowel_swaps=(2, 1))
    with pytest.raises(ValueError, match="vowel swaps"):
        AccentRules(vowel_swaps=(0, len(VOWELS) + 1))


def test_data_folder_links_the_bundled_data_and_holds_exactly_the_voices(tmp_path):
    folder = pseudo_accent_data(tmp_path / "data", pseudo_accent_voices(3, seed=0))
    assert (folder / "phontab").read_bytes() == (default_data_path() / "phontab").read_bytes()
    assert (folder / "voices" / "!v" / "m3").is_file()
    assert [p.name for p in (folder / "lang").iterdir()] == ["gmw"]  # espeak-ng lists 349 voices at most
    assert sorted(p.name for p in (folder / "voices" / "mel-llm").iterdir()) == ["p000", "p001", "p002"]
    pseudo_accent_data(folder, pseudo_accent_voices(2, seed=0))
    assert sorted(p.name for p in (folder / "voices" / "mel-llm").iterdir()) == ["p000", "p001"]


def test_made_up_accents_change_how_the_words_sound(tmp_path):
    """Spoken in a fresh process (one espeak-ng data folder per process): a made-up accent vs its base accent."""
    voices = pseudo_accent_voices(6, seed=0)
    data = pseudo_accent_data(tmp_path / "data", voices)
    base_of = {name: split_voice(text)[0] for name, text in voices.items()}
    rows = []
    for name, base in base_of.items():
        for voice in (base, name):
            path = f"{len(rows):03d}.wav"
            rows.append(
                {"path": path, "transcript": TEXT, "voice": voice, "rate_wpm": 170, "pitch": 50, "pitch_range": 50}
            )
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        (timings,) = pool.map(synthesize_shard, [(str(tmp_path), 0, rows, str(data))])
    differ = 0
    for i in range(0, len(rows), 2):
        base_audio, _ = soundfile.read(tmp_path / rows[i]["path"])
        accent_audio, _ = soundfile.read(tmp_path / rows[i + 1]["path"])
        n = min(len(base_audio), len(accent_audio))
        differ += len(base_audio) != len(accent_audio) or not np.allclose(base_audio[:n], accent_audio[:n], atol=1e-3)
    assert differ >= 5  # 2-5 vowel swaps almost always touch a vowel of this sentence
    assert all(duration > 1.0 for duration, _ in timings)


def test_the_most_voices_still_leave_every_english_accent_speakable(tmp_path):
    """espeak-ng lists 349 voices at most: a full set of made-up accents must not push out the real ones."""
    data = pseudo_accent_data(tmp_path / "data", pseudo_accent_voices(MAX_VOICES, seed=0))
    voices = [f"mel-llm/p{MAX_VOICES - 1:03d}", "en-us", "en-gb-scotland+f5", "en-gb-x-gbcwmd+klatt2"]
    rows = [
        {"path": f"{i}.wav", "transcript": "seven", "voice": v, "rate_wpm": 170, "pitch": 50, "pitch_range": 50}
        for i, v in enumerate(voices)
    ]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        (timings,) = pool.map(synthesize_shard, [(str(tmp_path), 0, rows, str(data))])
    assert all(duration > 0.2 for duration, _ in timings)


def test_one_data_folder_per_process(tmp_path):
    EspeakSynthesizer()  # the bundled data, as every other test in this process uses
    with pytest.raises(RuntimeError, match="cannot switch"):
        EspeakSynthesizer(tmp_path)
