"""Long-form transcription in `generate`: windows cut at quiet points, joined text, Whisper-style segments."""

import itertools

import numpy as np
import pytest
import torch

from modeling_mel_llm.long_form_mel_llm import MelLLMLongFormOutput, window_bounds


RATE = 16_000


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.float32)


def _spoken_sequence(clips: list[np.ndarray], gap_s: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The clips one after another with `gap_s` of silence around each; and where each clip lies (s)."""
    parts, spans, now = [_silence(gap_s)], [], gap_s
    for clip in clips:
        parts += [clip, _silence(gap_s)]
        spans.append((now, now + len(clip) / RATE))
        now += (len(clip) + round(gap_s * RATE)) / RATE
    return np.concatenate(parts), spans


def test_window_bounds_cut_in_the_quietest_stretch_on_patch_boundaries():
    loudness = torch.zeros(1000, 4)
    loudness[850:870] = -10.0  # the only quiet stretch inside the search range of the first window
    bounds = window_bounds(loudness, length=1000, window=880, frames_per_patch=8)
    assert bounds[0][0] == 0
    assert bounds[-1][1] == 1000
    assert all(a == b for (_, a), (b, _) in itertools.pairwise(bounds))  # contiguous, no gap or overlap
    cut = bounds[0][1]
    assert cut % 8 == 0
    assert 848 <= cut <= 872
    assert all(end - start <= 880 for start, end in bounds)


def test_window_bounds_make_progress_with_a_one_patch_window():
    bounds = window_bounds(torch.zeros(20, 2), length=20, window=8, frames_per_patch=8)
    assert bounds == [(0, 8), (8, 16), (16, 20)]


def test_long_audio_is_transcribed_window_by_window(overfit_models, processor, fsdd_batch):
    """Four spoken digits with 0.6 s of silence between them, read in windows shorter than two digits: the cuts fall
    in the silences (each digit lies inside one segment), each segment's tokens are what `generate` says for that
    stretch of audio alone, and the transcript joins them in order."""
    model, _ = overfit_models("llama", "stack")
    clips, _ = fsdd_batch
    audio, spans = _spoken_sequence(clips, gap_s=0.6)
    window_s = max(len(c) for c in clips) / RATE + 1.0
    inputs = processor(audio=[audio], sampling_rate=RATE, return_tensors="pt")
    settings = {"max_new_tokens": 6, "do_sample": False}
    output = model.generate(**inputs, return_timestamps=True, long_form_window_s=window_s, **settings)
    assert isinstance(output, MelLLMLongFormOutput)
    (segments,) = output.segments
    assert len(segments) == len(clips)
    assert segments[0]["start"] == 0.0
    assert segments[-1]["end"] == pytest.approx(processor.feature_extractor.num_frames(len(audio)) * 0.01)
    for segment, (start, end), following in zip(segments, spans, [*segments[1:], None], strict=True):
        assert segment["start"] <= start
        assert end <= segment["end"] <= segment["start"] + window_s
        assert following is None or following["start"] == segment["end"]
        first, last = round(segment["start"] / 0.01), round(segment["end"] / 0.01)  # frames; 160 samples apart
        alone = processor(audio=[audio[first * 160 : (last - 1) * 160 + 400]], sampling_rate=RATE, return_tensors="pt")
        answer = model.generate(**alone, **settings)[0, alone["input_ids"].shape[1] :]
        answer = answer[answer != model.generation_config.eos_token_id]
        assert segment["tokens"].tolist() == answer.tolist()
    texts = [processor.tokenizer.decode(s["tokens"], skip_special_tokens=True).strip() for s in segments]
    (transcript,) = processor.batch_decode(output.sequences, skip_special_tokens=True)
    assert transcript.split() == " ".join(texts).split()
    plain = model.generate(**inputs, long_form_window_s=window_s, **settings)  # no timestamps: the rows alone
    assert torch.equal(plain, output.sequences)


def test_short_audio_takes_the_plain_path_and_timestamps_span_the_clip(overfit_models, processor, fsdd_batch):
    model, _ = overfit_models("llama", "stack")
    clips, _texts = fsdd_batch
    inputs = processor(audio=clips[:2], sampling_rate=RATE, padding="longest", return_tensors="pt")
    settings = {"max_new_tokens": 6, "do_sample": False}
    plain = model.generate(**inputs, **settings)
    timed = model.generate(**inputs, return_timestamps=True, **settings)
    assert processor.batch_decode(timed.sequences, skip_special_tokens=True) == processor.batch_decode(
        plain, skip_special_tokens=True
    )
    for row, clip in zip(timed.segments, clips[:2], strict=True):
        (segment,) = row
        assert segment["start"] == 0.0
        assert segment["end"] == pytest.approx(processor.feature_extractor.num_frames(len(clip)) * 0.01)


def test_long_form_refuses_what_it_cannot_honour(make_model, processor):
    model = make_model()
    inputs = processor(audio=[_silence(1.0)], sampling_rate=RATE, return_tensors="pt")
    with pytest.raises(ValueError, match="num_return_sequences"):
        model.generate(**inputs, return_timestamps=True, num_beams=2, num_return_sequences=2, max_new_tokens=2)
    with pytest.raises(ValueError, match="shorter than one audio patch"):
        model.generate(**inputs, long_form_window_s=0.01, max_new_tokens=2)
    with pytest.raises(ValueError, match="needs audio"):
        model.generate(input_ids=inputs["input_ids"], return_timestamps=True, max_new_tokens=2)


def test_pipeline_reads_long_audio_through_long_form_generate(overfit_models, processor, fsdd_batch, tmp_path):
    """Without chunk_length_s the pipeline hands long audio to `generate`, whose windows become its chunks."""
    from transformers import pipeline

    model, _ = overfit_models("llama", "stack")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    clips, _ = fsdd_batch
    audio, spans = _spoken_sequence(clips, gap_s=0.6)
    window_s = max(len(c) for c in clips) / RATE + 1.0
    asr = pipeline("automatic-speech-recognition", model=str(tmp_path), trust_remote_code=True)
    settings = {"max_new_tokens": 6, "long_form_window_s": window_s}
    result = asr(audio, return_timestamps=True, generate_kwargs=settings)
    expected = model.generate(
        **processor(audio=[audio], sampling_rate=RATE, return_tensors="pt"), return_timestamps=True, **settings
    )
    assert result["text"] == processor.batch_decode(expected.sequences, skip_special_tokens=True)[0].strip()
    assert len(result["chunks"]) == len(clips)
    for chunk, (start, end) in zip(result["chunks"], spans, strict=True):
        assert chunk["timestamp"][0] <= start
        assert end <= chunk["timestamp"][1]
    assert result["chunks"][-1]["timestamp"][1] == pytest.approx(len(audio) / RATE)
    assert result["text"].split() == " ".join(chunk["text"] for chunk in result["chunks"]).split()


def test_a_four_minute_recording_runs_to_the_end(make_model, processor, fsdd_batch, tmp_path):
    """A leaderboard-style script (AutoModelForSpeechSeq2Seq, AutoProcessor, generate, batch_decode) and the
    pipeline both transcribe a 4-minute recording beside a short clip, in windows of at most 30 s, where one pass
    would overrun the backbone's context."""
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

    make_model().save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    clips, _ = fsdd_batch
    long_audio, _ = _spoken_sequence(clips * 120, gap_s=0.25)
    long_audio = long_audio[: 240 * RATE]
    assert len(long_audio) == 240 * RATE
    model = AutoModelForSpeechSeq2Seq.from_pretrained(tmp_path, trust_remote_code=True)
    loaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    inputs = loaded([long_audio, clips[0]], sampling_rate=RATE, padding="longest", return_tensors="pt")
    assert inputs["input_ids"].shape[1] > model.config.text_config.max_position_embeddings  # one pass cannot hold it
    output = model.generate(**inputs, max_new_tokens=3, do_sample=False, return_timestamps=True)
    assert 8 <= len(output.segments[0]) <= 10  # 30 s windows, each cut at a quiet point in its last 6 s
    assert len(output.segments[1]) == 1
    assert output.segments[0][-1]["end"] == pytest.approx(240.0, abs=0.03)
    assert all(len(segment["tokens"]) <= 3 for row in output.segments for segment in row)
    assert len(loaded.batch_decode(model.generate(**inputs, max_new_tokens=3, do_sample=False))) == 2
    asr = pipeline("automatic-speech-recognition", model=str(tmp_path), trust_remote_code=True)
    result = asr(long_audio, return_timestamps=True, max_new_tokens=3)
    assert [chunk["timestamp"] for chunk in result["chunks"][:-1]] == [
        (s["start"], s["end"]) for s in output.segments[0][:-1]
    ]
    assert result["chunks"][-1]["timestamp"][1] == pytest.approx(240.0)
