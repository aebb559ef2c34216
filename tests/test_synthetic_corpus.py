"""The embedded espeak-ng corpus: synthesis, the text generator, determinism, held-out voices and the disk cache."""

import itertools
import json
import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from processing import espeak_mel_llm
from training.arguments import parse_config
from training.corpus import synthetic_corpus, template_text
from training.corpus.corpora import synthetic_manifests
from training.corpus.synthetic_corpus import (
    HELD_OUT_SPEAKERS,
    HELD_OUT_VOICES,
    TRAIN_VOICES,
    build_corpus,
    speakers_manifest,
)
from training.corpus.synthetic_speech import EspeakSynthesizer
from training.corpus.template_text import generate_text, vocabulary
from training.data import read_manifest


WORDS = re.compile(r"^[a-z]+( [a-z]+)*$")


def build_small(root: Path, num_train: int = 24, num_eval: int = 15, seed: int = 3, **kwargs) -> tuple[Path, Path]:
    """A few dozen clips in shards of 16, so several fresh synthesis processes take part."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(synthetic_corpus, "SHARD_SIZE", 16)
        return build_corpus(root, num_train=num_train, num_eval=num_eval, seed=seed, **kwargs)


def rows_of(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def mean_spectrum(audio: np.ndarray) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(audio, 512)[::256] * np.hanning(512)
    spectrum = np.log(np.abs(np.fft.rfft(frames)).mean(axis=0) + 1e-6)
    return spectrum - spectrum.mean()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    return build_small(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def synthesizer() -> EspeakSynthesizer:
    return EspeakSynthesizer()


def test_synthesis_gives_plausible_audio(synthesizer):
    assert synthesizer.sampling_rate == 22050
    short = synthesizer.synthesize("three seven one", "en-us", rate_wpm=175)
    long = synthesizer.synthesize("turn the lights off in the kitchen and play some music", "en-us", rate_wpm=175)
    for audio in (short, long):
        assert audio.dtype == np.float32
        assert np.isfinite(audio).all()
        assert 0.05 < np.abs(audio).max() <= 1.0
        assert np.sqrt(np.mean(audio**2)) > 0.01
    assert 0.5 < len(short) / 22050 < 3.0
    assert len(long) > 2 * len(short)
    slow = synthesizer.synthesize("three seven one", "en-us", rate_wpm=120)
    assert len(slow) > len(short)


def test_different_voices_sound_different(synthesizer):
    text = "the quick brown fox jumps over the lazy dog"
    base = mean_spectrum(synthesizer.synthesize(text, "en-us"))
    again = mean_spectrum(synthesizer.synthesize(text, "en-us"))
    for other in ("en-us+f3", "en-gb-scotland+m4", "en-us+klatt"):
        distance = np.abs(mean_spectrum(synthesizer.synthesize(text, other)) - base).mean()
        assert distance > 3 * np.abs(again - base).mean(), other


def test_unknown_voice_or_variant_is_an_error(synthesizer):
    with pytest.raises(ValueError, match="no voice"):
        synthesizer.synthesize("hello", "xx-nowhere")
    with pytest.raises(ValueError, match="variant"):
        synthesizer.synthesize("hello", "en-us+nonexistent")  # espeak-ng itself would silently ignore it
    assert {"m3", "f2", "klatt"} <= set(synthesizer.variants)


def test_missing_library_gives_install_advice(monkeypatch):
    monkeypatch.setattr(espeak_mel_llm, "_state", {})  # as in a process that has not loaded espeak-ng yet
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # makes `import espeakng_loader` fail
    with pytest.raises(RuntimeError, match="pip install espeakng-loader"):
        EspeakSynthesizer()


def test_voice_plan_holds_out_accents_and_variants(synthesizer):
    assert not set(TRAIN_VOICES) & set(HELD_OUT_VOICES)
    accents = lambda voices: {v.partition("+")[0] for v in voices}  # noqa: E731
    variants = lambda voices: {v.partition("+")[2] for v in voices}  # noqa: E731
    assert not accents(TRAIN_VOICES) & accents(HELD_OUT_VOICES)
    assert not variants(TRAIN_VOICES) & variants(HELD_OUT_VOICES)
    for voice in TRAIN_VOICES + HELD_OUT_VOICES:  # every name exists in the bundled data
        assert len(synthesizer.synthesize("one", voice)) > 0


def test_text_generator_covers_every_kind():
    rng = random.Random(0)
    samples = [generate_text(rng) for _ in range(600)]
    kinds = {kind for kind, _ in samples}
    assert kinds == {"digits", "number", "command", "sentence"}
    vocabulary_words = set(vocabulary())
    assert 200 < len(vocabulary_words) < 600
    for kind, text in samples:
        assert WORDS.match(text), text
        assert 1 <= len(text.split()) <= 12
        assert set(text.split()) <= vocabulary_words, text
        if kind == "digits":
            assert set(text.split()) <= set(template_text.ONES[:10])
    texts = {text for _, text in samples}
    assert any(t.startswith("turn the") for t in texts)
    assert any(t.startswith("the ") and len(t.split()) >= 4 for t in texts)
    assert [generate_text(random.Random(5)) for _ in range(3)] == [generate_text(random.Random(5)) for _ in range(3)]


def test_manifests_load_and_match_the_audio(corpus):
    train_manifest, eval_manifest = corpus
    for manifest, split, count in ((train_manifest, "train", 24), (eval_manifest, "eval", 15)):
        utterances = read_manifest(manifest)
        assert len(utterances) == count
        for utterance, row in zip(utterances, rows_of(manifest), strict=True):
            assert utterance.audio_path.is_file()
            assert WORDS.match(utterance.text)
            assert row["split"] == split
            assert row["speaker"] == row["voice"]
            audio, rate = soundfile.read(utterance.audio_path, dtype="float32")
            assert rate == 16_000
            assert audio.ndim == 1
            assert abs(len(audio) / rate - row["duration"]) < 1e-3
            assert 0.85 < np.abs(audio).max() < 0.95  # peak-normalised to 0.9
            assert 0.2 < row["duration"] < 8.0


def test_eval_split_uses_only_held_out_voices_and_unseen_texts(corpus):
    train_rows, eval_rows = rows_of(corpus[0]), rows_of(corpus[1])
    made_up = [r for r in train_rows if r["voice"].startswith("mel-llm/")]  # pseudo accents
    assert {r["voice"] for r in train_rows if r not in made_up} <= set(TRAIN_VOICES)
    assert {r["voice"] for r in eval_rows} == set(HELD_OUT_VOICES)  # 15 clips: each held-out voice once
    assert not {r["transcript"] for r in eval_rows} & {r["transcript"] for r in train_rows}


def test_pseudo_accents_respeak_a_share_of_training_rows_only(corpus):
    """Made-up accents replace the accent of about half the training rows; texts, prosody and modifiers stay."""
    plain = synthetic_corpus.plan_corpus(400, 15, seed=3)
    accented = synthetic_corpus.plan_corpus(400, 15, seed=3, pseudo_accent_share=0.5)
    changed = [(a, b) for a, b in zip(plain, accented, strict=True) if a["voice"] != b["voice"]]
    assert 150 < len(changed) < 250
    assert all(b["split"] == "train" and b["voice"].startswith("mel-llm/p") for _, b in changed)
    assert all(a["voice"].partition("+")[2] == b["voice"].partition("+")[2] for a, b in changed)  # same modifier
    strip = [{k: v for k, v in row.items() if k not in ("voice", "speaker")} for row in plain]
    assert strip == [{k: v for k, v in row.items() if k not in ("voice", "speaker")} for row in accented]
    train_rows = rows_of(corpus[0])  # the built corpus: spoken, with its own voice data folder
    made_up = [r for r in train_rows if r["voice"].startswith("mel-llm/")]
    assert 0 < len(made_up) < len(train_rows)
    assert all(r["duration"] > 0.2 for r in made_up)
    assert (corpus[0].parent / "espeak-ng-data" / "voices" / "mel-llm").is_dir()
    info = json.loads((corpus[0].parent / "corpus_info.json").read_text())
    assert info["pseudo_accents"] == {
        "share": synthetic_corpus.PSEUDO_ACCENT_SHARE,
        "voices": synthetic_corpus.PSEUDO_ACCENT_VOICES,
    }


def test_speakers_split_holds_out_voice_modifiers_but_not_accents(corpus):
    """`eval_speakers`: new speakers of the training accents, so it measures what `eval` mixes with new accents."""
    accent, variant = (lambda voice: voice.split("+")[0]), (lambda voice: voice.partition("+")[2])
    train_rows, eval_rows = rows_of(corpus[0]), rows_of(corpus[1])
    speaker_rows = rows_of(speakers_manifest(corpus[1]))
    assert len(speaker_rows) == len(eval_rows) == 15
    assert {r["split"] for r in speaker_rows} == {"eval_speakers"}
    assert all(Path(corpus[1].parent, r["path"]).is_file() for r in speaker_rows)
    assert {r["voice"] for r in speaker_rows} <= set(HELD_OUT_SPEAKERS)
    assert len({r["voice"] for r in speaker_rows}) == 15  # 15 clips of 25 voices: no voice twice
    assert {accent(r["voice"]) for r in speaker_rows} <= {accent(v) for v in TRAIN_VOICES}
    assert not {variant(r["voice"]) for r in speaker_rows} & {variant(v) for v in TRAIN_VOICES}
    assert not {r["transcript"] for r in speaker_rows} & {r["transcript"] for r in train_rows}


def test_single_voice_corpus_keeps_the_texts_and_fixes_voice_and_prosody(corpus, tmp_path):
    """The TTS corpus: the many-voice corpus's texts (same seed), spoken by one voice at one rate and pitch."""
    single = build_small(tmp_path, voice="en-us")
    for many_voices, one_voice in zip(corpus, single, strict=True):
        rows, reference = rows_of(one_voice), rows_of(many_voices)
        assert [r["transcript"] for r in rows] == [r["transcript"] for r in reference]
        assert {r["voice"] for r in rows} == {"en-us"}
        assert {(r["rate_wpm"], r["pitch"], r["pitch_range"]) for r in rows} == {(170, 50, 50)}
    durations = {r["transcript"]: r["duration"] for r in rows_of(single[0])}
    assert len(durations) > 10
    words = {text: len(text.split()) for text in durations}
    # One speaking rate: duration follows the word count far more closely than with random rates.
    correlation = np.corrcoef([words[t] for t in durations], list(durations.values()))[0, 1]
    assert correlation > 0.8
    assert json.loads((tmp_path / "corpus_info.json").read_text())["voice"] == "en-us"


def test_same_seed_gives_identical_corpus(corpus, tmp_path):
    again = build_small(tmp_path / "again", num_workers=1)  # other worker count, same shards
    for first, second in zip(corpus, again, strict=True):
        assert first.read_text() == second.read_text()
        for row in rows_of(first):
            assert (first.parent / row["path"]).read_bytes() == (second.parent / row["path"]).read_bytes()


def test_cache_is_reused_and_invalidated(tmp_path, capfd):
    train_manifest, eval_manifest = build_small(tmp_path, num_train=4, num_eval=2)
    log = capfd.readouterr().err  # not a terminal: one line before, one progress line per half minute and at the end
    assert f"Synthesising 8 utterances with espeak-ng into {tmp_path} (about 1 min" in log  # 4 + 2 + the speakers set
    assert "espeak-ng corpus shards: 1/1" in log
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert build_small(tmp_path, num_train=4, num_eval=2) == (train_manifest, eval_manifest)
    assert "Synthesising" not in capfd.readouterr().err  # a cached corpus is not announced
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == files

    build_small(tmp_path, num_train=4, num_eval=3)
    assert len(rows_of(eval_manifest)) == 3
    assert json.loads((tmp_path / "corpus_info.json").read_text())["num_eval"] == 3
    assert (tmp_path / "train" / "000000.wav").stat().st_mtime_ns != stamps[tmp_path / "train" / "000000.wav"]


def test_default_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MEL_LLM_CACHE", str(tmp_path))
    assert synthetic_corpus.default_cache_dir() == tmp_path / "synthetic_corpus"
    monkeypatch.delenv("MEL_LLM_CACHE")
    assert synthetic_corpus.default_cache_dir() == Path.home() / ".cache" / "mel_llm" / "synthetic_corpus"


def test_default_cache_keeps_one_folder_per_size(tmp_path, monkeypatch):
    """Runs (and readers such as tts_eval or peers) with other corpus sizes must not evict each other's corpus."""
    monkeypatch.setenv("MEL_LLM_CACHE", str(tmp_path))
    small = synthetic_corpus.build_corpus(num_train=4, num_eval=2, num_workers=1)
    larger = synthetic_corpus.build_corpus(num_train=5, num_eval=2, num_workers=1)
    one_voice = synthetic_corpus.build_corpus(num_train=4, num_eval=2, num_workers=1, voice="en-us")
    assert len({small[0].parent, larger[0].parent, one_voice[0].parent}) == 3
    assert small[0].parent.parent == larger[0].parent.parent == tmp_path / "synthetic_corpus"
    assert all(m.is_file() for m in (*small, *larger))
    info = json.loads((small[0].parent / "corpus_info.json").read_text())
    assert (info["num_train"], info["num_eval"]) == (4, 2)
    assert speakers_manifest(small[1]).is_file()
    assert not speakers_manifest(one_voice[1]).exists()


def test_word_starts_mark_where_each_word_begins(synthesizer):
    audio, starts = synthesizer.synthesize_with_word_starts("seven, nine")  # the comma is a pause between the words
    rate = synthesizer.sampling_rate
    frame = rate // 100
    loud = np.abs(audio[: len(audio) // frame * frame]).reshape(-1, frame).max(-1) > 0.05 * np.abs(audio).max()
    onsets = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1  # 10 ms frames where sound resumes
    second_onset = onsets[onsets > starts[0] * 100 + 20][0] / 100
    assert starts[0] < 0.05
    assert abs(starts[1] - second_onset) < 0.06
    # espeak-ng reports one event per stress group: "the" shares "in"'s and gets a share of its time.
    _, starts = synthesizer.synthesize_with_word_starts("dim the lights in the garden")
    assert len(starts) == 6
    assert all(a < b for a, b in itertools.pairwise(starts))


def test_manifests_record_each_words_start(corpus):
    for row in rows_of(corpus[0]) + rows_of(corpus[1]):
        starts = row["word_starts"]
        assert len(starts) == len(row["transcript"].split())
        assert starts == sorted(starts)
        assert 0.0 <= starts[0] < 0.1  # the clip is trimmed to 50 ms before the first sound
        assert starts[-1] < row["duration"]


def test_made_up_accent_variants_keep_their_own_cache_folders(tmp_path, monkeypatch):
    """A sweep builds corpora that differ only in their made-up accents; none may evict or reuse another's clips."""
    monkeypatch.setenv("MEL_LLM_CACHE", str(tmp_path))
    arguments = [
        "--config",
        "training/configs/tiny_templates_cpu.yaml",
        "--synthetic_num_train=6",
        "--synthetic_num_eval=2",
    ]
    variants = {
        "default": [],
        "rules": ["--synthetic_pseudo_accent_vowel_swaps=[1,2]"],
        "none": ["--synthetic_pseudo_accent_share=0"],
    }
    folders = {}
    for name, extra in variants.items():
        _, data_args, training_args = parse_config(arguments + extra)
        train_manifest, _ = synthetic_manifests(data_args, training_args.seed)
        folders[name] = train_manifest.parent
        assert train_manifest.is_file()
    assert (
        folders["default"]
        == tmp_path / "synthetic_corpus" / f"v{synthetic_corpus.GENERATOR_VERSION}-train6-eval2-seed0"
    )
    assert len(set(folders.values())) == 3
    info = {name: json.loads((folder / "corpus_info.json").read_text()) for name, folder in folders.items()}
    assert info["rules"]["pseudo_accents"] == {**synthetic_corpus.DEFAULT_PSEUDO_ACCENTS, "vowel_swaps": [1, 2]}
    assert info["default"]["pseudo_accents"] == synthetic_corpus.DEFAULT_PSEUDO_ACCENTS
    assert "pseudo_accents" not in info["none"]
    with pytest.raises(ValueError, match="vowel swaps"):
        synthetic_manifests(parse_config([*arguments, "--synthetic_pseudo_accent_vowel_swaps=[5,2]"])[1], 0)
