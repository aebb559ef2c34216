"""ASR pipeline input handling: load_audio on every input form, readable errors, batching and chunking."""

import numpy as np
import pytest
import soundfile
import soxr
import torch
from transformers import pipeline

from processing import load_audio, merge_overlapping_words
from tests.conftest import FSDD_DIR
from training.tiny import build_tiny_model


RATE = 16_000


@pytest.fixture(scope="module")
def asr(processor, tmp_path_factory):
    """The pipeline loaded from a saved tiny model + processor, the way users load it (remote code, no Hub)."""
    torch.manual_seed(0)
    model = build_tiny_model(processor, family="llama", frontend="stack").eval()
    directory = tmp_path_factory.mktemp("mel_llm")
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return pipeline("automatic-speech-recognition", model=str(directory), trust_remote_code=True)


@pytest.fixture(scope="module")
def fsdd_paths(fsdd_rows) -> list:
    """Three real 8 kHz recordings of different lengths."""
    return [FSDD_DIR / row["path"] for row in fsdd_rows[::40][:3]]


def noise(num_samples: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(num_samples)).astype(np.float32)


# ---------------------------------------------------------------------- load_audio
def test_load_audio_resamples_8k_file(fsdd_paths):
    for path in fsdd_paths:
        original, rate = soundfile.read(path, dtype="float32")
        assert rate == 8000
        audio = load_audio(path, RATE)
        assert audio.dtype == np.float32
        assert audio.ndim == 1
        assert abs(len(audio) - 2 * len(original)) <= 2
        assert np.isfinite(audio).all()
        assert np.abs(audio).max() > 0.01
        # str and Path give the same samples
        np.testing.assert_array_equal(load_audio(str(path), RATE), audio)


def test_load_audio_file_at_target_rate_is_unchanged(tmp_path):
    clip = noise(4000)
    soundfile.write(tmp_path / "a.wav", clip, RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "a.wav", RATE), clip)


def test_load_audio_stereo_wav_is_channel_mean(tmp_path):
    stereo = np.stack([noise(6000, 1), noise(6000, 2)], axis=1)  # (N, 2), as soundfile writes it
    soundfile.write(tmp_path / "stereo.wav", stereo, RATE, subtype="FLOAT")
    audio = load_audio(tmp_path / "stereo.wav", RATE)
    assert audio.shape == (6000,)
    np.testing.assert_allclose(audio, stereo.mean(axis=1), atol=1e-7)


def test_load_audio_int16_wav(tmp_path):
    pcm = (noise(5000) * 32767).clip(-32768, 32767).astype(np.int16)
    soundfile.write(tmp_path / "pcm16.wav", pcm, RATE, subtype="PCM_16")
    audio = load_audio(tmp_path / "pcm16.wav", RATE)
    assert audio.dtype == np.float32
    np.testing.assert_array_equal(audio, pcm.astype(np.float32) / 32768.0)


def test_load_audio_int16_array_in_dict_is_scaled():
    pcm = np.array([-32768, 0, 16384] * 100, dtype=np.int16)
    audio = load_audio({"raw": pcm, "sampling_rate": RATE}, RATE)
    np.testing.assert_array_equal(audio[:3], [-1.0, 0.0, 0.5])


def test_load_audio_dict_at_44100_is_resampled():
    raw = noise(44100)
    audio = load_audio({"raw": raw, "sampling_rate": 44100}, RATE)
    assert audio.dtype == np.float32
    assert abs(len(audio) - RATE) <= 2
    np.testing.assert_allclose(audio, soxr.resample(raw, 44100, RATE), atol=1e-6)
    # the datasets format gives the same result
    np.testing.assert_array_equal(load_audio({"array": raw, "sampling_rate": 44100}, RATE), audio)


def test_load_audio_array_is_taken_at_target_rate():
    raw = noise(3000)
    np.testing.assert_array_equal(load_audio(raw, RATE), raw)
    # one down-mix rule with the feature extractor: (samples, channels) is averaged, (channels, samples) refused
    both = np.stack([noise(3000, 1), noise(3000, 2)], axis=1)
    np.testing.assert_allclose(load_audio(both, RATE), both.mean(axis=1), atol=1e-7)
    with pytest.raises(ValueError, match=r"shape \(2, 3000\).*\(samples, channels\)"):
        load_audio(both.T.copy(), RATE)


def test_load_audio_all_forms_agree(fsdd_paths):
    path = fsdd_paths[0]
    data = path.read_bytes()
    raw, rate = soundfile.read(path, dtype="float32")
    reference = load_audio(path, RATE)
    for form in (
        data,
        bytearray(data),
        {"path": str(path)},
        {"path": str(path), "bytes": None},
        {"bytes": data, "path": None},
        {"raw": raw, "sampling_rate": rate},
        {"array": raw, "sampling_rate": rate, "path": None},
    ):
        np.testing.assert_array_equal(load_audio(form, RATE), reference)


# ---------------------------------------------------------------------- bad input
@pytest.fixture
def bad_files(tmp_path) -> dict:
    corrupt = tmp_path / "corrupt_clip.wav"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty_clip.wav"
    empty.write_bytes(b"")
    text_mp3 = tmp_path / "notes_clip.mp3"
    text_mp3.write_text("this is not audio\n" * 50)
    text_txt = tmp_path / "notes_clip.txt"
    text_txt.write_text("this is not audio either\n" * 50)
    silent = tmp_path / "no_samples.wav"
    soundfile.write(silent, np.zeros(0, dtype=np.float32), RATE)
    missing = tmp_path / "missing_clip.wav"
    return {"corrupt": corrupt, "empty": empty, "mp3": text_mp3, "txt": text_txt, "silent": silent, "missing": missing}


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("corrupt", r"Could not decode audio from file .*corrupt_clip\.wav"),
        ("empty", r"Could not decode audio from file .*empty_clip\.wav"),
        ("mp3", r"Could not decode audio from file .*notes_clip\.mp3"),
        ("txt", r"Could not decode audio from file .*notes_clip\.txt"),
        ("silent", r"no_samples\.wav.* is empty"),
        ("missing", r"missing_clip\.wav.* does not exist"),
    ],
)
def test_bad_file_raises_naming_the_file(bad_files, asr, kind, match):
    path = bad_files[kind]
    with pytest.raises(ValueError, match=match):
        load_audio(path, RATE)
    with pytest.raises(ValueError, match=match):
        load_audio(str(path), RATE)
    # the pipeline surfaces the same error, file name included
    with pytest.raises(ValueError, match=match):
        asr(str(path), max_new_tokens=2)


def test_bad_file_in_datasets_dict_names_the_file(bad_files):
    with pytest.raises(ValueError, match=r"corrupt_clip\.wav"):
        load_audio({"path": str(bad_files["corrupt"]), "bytes": None}, RATE)


def test_non_audio_bytes_raise(asr):
    junk = b"definitely not a wav file" * 20
    with pytest.raises(ValueError, match=f"Could not decode audio from {len(junk)} bytes"):
        load_audio(junk, RATE)
    with pytest.raises(ValueError, match="Could not decode audio"):
        asr(junk, max_new_tokens=2)
    with pytest.raises(ValueError, match="Could not decode audio"):
        load_audio({"bytes": junk}, RATE)


@pytest.mark.parametrize("value", [42, 3.5, ["a.wav", "b.wav"], None, object()])
def test_unsupported_type_raises_type_error(value):
    with pytest.raises(TypeError, match="Unsupported audio input of type"):
        load_audio(value, RATE)


@pytest.mark.parametrize("value", [42, ["a.wav"]])
def test_unsupported_type_through_pipeline(asr, value):
    # a list is a batch for the pipeline, so a nested list reaches load_audio as a list
    inputs = value if not isinstance(value, list) else [value]
    with pytest.raises(TypeError, match=f"Unsupported audio input of type {type(value).__name__}"):
        asr(inputs, max_new_tokens=2)


@pytest.mark.parametrize(
    "bad_dict",
    [
        {"raw": np.zeros(800, dtype=np.float32)},
        {"array": np.zeros(800, dtype=np.float32)},
        {"sampling_rate": RATE},
        {},
    ],
)
def test_dict_without_needed_keys_raises(asr, bad_dict):
    with pytest.raises(ValueError, match=r"needs 'raw' \(or 'array'\) and 'sampling_rate'"):
        load_audio(bad_dict, RATE)
    with pytest.raises(ValueError, match="sampling_rate"):
        asr(bad_dict, max_new_tokens=2)


def test_non_numeric_array_raises_type_error():
    with pytest.raises(TypeError, match="dtype"):
        load_audio({"raw": np.array(["x"] * 10), "sampling_rate": RATE}, RATE)


def test_nan_audio_through_pipeline_raises(asr):
    audio = noise(RATE)
    audio[100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        asr(audio, max_new_tokens=2)
    with pytest.raises(ValueError, match="NaN"):
        asr({"raw": audio[:8000], "sampling_rate": 8000}, max_new_tokens=2)


# ---------------------------------------------------------------------- pipeline: input forms, batching
def test_pipeline_output_format(asr, fsdd_paths):
    out = asr(str(fsdd_paths[0]), max_new_tokens=5)
    assert isinstance(out, dict)
    assert set(out) == {"text"}
    assert isinstance(out["text"], str)


def test_pipeline_input_forms_give_identical_text(asr, fsdd_paths):
    path = fsdd_paths[0]
    data = path.read_bytes()
    raw, rate = soundfile.read(path, dtype="float32")
    expected = asr(str(path), max_new_tokens=5)["text"]
    forms = {
        "Path": path,
        "bytes": data,
        "numpy at 16 kHz": load_audio(path, RATE),
        "pipeline dict": {"raw": raw, "sampling_rate": rate},
        "datasets dict": {"array": raw, "sampling_rate": rate},
        "datasets path": {"path": str(path), "bytes": None},
        "datasets bytes": {"bytes": data, "path": None},
    }
    for name, form in forms.items():
        assert asr(form, max_new_tokens=5)["text"] == expected, name
    # the untrained model's text does depend on the audio, so the equalities above are not vacuous
    assert asr(str(fsdd_paths[1]), max_new_tokens=5)["text"] != expected


def test_pipeline_max_new_tokens_and_generate_kwargs_agree(asr, fsdd_paths):
    path = str(fsdd_paths[1])
    assert (
        asr(path, max_new_tokens=4)["text"]
        == asr(path, generate_kwargs={"max_new_tokens": 4, "do_sample": False})["text"]
    )


def test_pipeline_batch_size_equals_one_by_one(asr, fsdd_paths):
    clips = [load_audio(path, RATE) for path in fsdd_paths]
    assert len({len(c) for c in clips}) == 3  # different lengths: the batch really pads
    one_by_one = [asr(clip, max_new_tokens=5) for clip in clips]
    assert len({out["text"] for out in one_by_one}) == 3, "the seeded tiny model should tell these clips apart"
    batched = asr(clips, batch_size=2, max_new_tokens=5)
    assert isinstance(batched, list)
    assert len(batched) == 3
    assert all(isinstance(out, dict) and isinstance(out["text"], str) for out in batched)
    assert [out["text"] for out in batched] == [out["text"] for out in one_by_one]
    # a list without batch_size is handled one by one
    assert [out["text"] for out in asr([str(p) for p in fsdd_paths], max_new_tokens=5)] == [
        out["text"] for out in one_by_one
    ]


# ---------------------------------------------------------------------- chunking
def test_merge_exact_overlap():
    assert merge_overlapping_words(["a", "b", "c", "d"], ["c", "d", "e"]) == ["a", "b", "c", "d", "e"]


def test_merge_without_overlap_concatenates():
    assert merge_overlapping_words(["a", "b"], ["c", "d"]) == ["a", "b", "c", "d"]


def test_merge_with_empty_sides():
    assert merge_overlapping_words([], ["x", "y"]) == ["x", "y"]
    assert merge_overlapping_words(["x", "y"], []) == ["x", "y"]
    assert merge_overlapping_words([], []) == []


def merged(left: str, right: str) -> str:
    return " ".join(merge_overlapping_words(left.split(), right.split()))


def test_merge_partial_overlap_keeps_halves():
    # a 4-word overlap with one disagreement: its first 2 words come from left, the last 2 from right
    assert merged("p q R s t", "q R2 s t u") == "p q R s t u"
    assert merged("p q r S t", "q r S2 t u") == "p q r S2 t u"
    # repeated words: equally good alignments go to the longer overlap, so no word is doubled
    assert merged("a a", "a a b") == "a a b"


def test_merge_single_word_overlap():
    assert merge_overlapping_words(["the", "quick", "fox"], ["fox", "jumps"]) == ["the", "quick", "fox", "jumps"]


def test_chunked_long_audio_returns_text(asr):
    long_audio = noise(10 * RATE)
    out = asr(long_audio, chunk_length_s=3.0, max_new_tokens=3)
    assert isinstance(out, dict)
    assert isinstance(out["text"], str)


def test_chunked_text_is_merge_of_window_transcripts(asr, fsdd_paths):
    # three real clips back to back (≈1.5 s) in 0.6 s windows with 0.1 s strides: windows start every 0.4 s
    long_audio = np.concatenate([load_audio(path, RATE) for path in fsdd_paths])
    chunk, step = round(0.6 * RATE), round(0.4 * RATE)
    starts = range(0, len(long_audio), step)
    windows = []
    for start in starts:
        windows.append(long_audio[start : start + chunk])
        if start + chunk >= len(long_audio):
            break
    assert len(windows) == 4
    expected = []
    for window in windows:
        expected = merge_overlapping_words(expected, asr(window, max_new_tokens=4)["text"].split())
    kwargs = {"chunk_length_s": 0.6, "stride_length_s": 0.1, "max_new_tokens": 4}
    assert asr(long_audio, **kwargs)["text"] == " ".join(expected)
    # batching the windows (a full and a partial batch, or all in one) changes nothing
    assert asr(long_audio, batch_size=3, **kwargs)["text"] == " ".join(expected)
    assert asr(long_audio, batch_size=8, **kwargs)["text"] == " ".join(expected)


def test_single_chunk_covering_the_clip_matches_unchunked(asr, fsdd_paths):
    # one chunk covering the whole clip is the same as no chunking
    clip = load_audio(fsdd_paths[0], RATE)
    whole = asr(clip, max_new_tokens=5)["text"]
    assert asr(clip, chunk_length_s=len(clip) / RATE + 1.0, max_new_tokens=5)["text"] == " ".join(whole.split())


@pytest.mark.parametrize(("chunk", "stride"), [(2.0, 1.0), (2.0, 1.5), (1.0, 0.6)])
def test_chunk_not_longer_than_twice_stride_raises(asr, chunk, stride):
    with pytest.raises(ValueError, match="must be more than twice stride_length_s"):
        asr(noise(5 * RATE), chunk_length_s=chunk, stride_length_s=stride, max_new_tokens=2)


def test_load_audio_one_frame_stereo_file_is_one_sample(tmp_path):
    path = tmp_path / "one_frame.wav"
    soundfile.write(path, np.array([[0.5, -0.25]], dtype=np.float32), 16_000)
    audio = load_audio(str(path), 16_000)
    assert audio.shape == (1,)
    assert audio[0] == pytest.approx(0.125, abs=1e-4)
