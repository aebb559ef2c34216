"""TTS through `pipeline("text-to-speech", trust_remote_code=True)` from a saved folder, and the TTS CLI."""

import json

import numpy as np
import pytest
import soundfile

from tests.test_auto_and_hub import run_fresh


def test_saved_folder_ships_tts_code_and_auto_class(tts_dir):
    names = {p.name for p in tts_dir.iterdir()}
    assert {"pipeline_tts_mel_llm.py", "vocoder_mel_llm.py", "mel_head.py", "text_normalization_mel_llm.py"} <= names
    config = json.loads((tts_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForTextToWaveform"] == "modeling_mel_llm.MelLLMForSpeechLM"
    assert config["custom_pipelines"]["text-to-speech"]["impl"].startswith("pipeline_tts_mel_llm.")


def test_fresh_process_pipeline_speaks_at_16k(tts_dir, tts_model, processor):
    model, _ = tts_model
    expected = model.generate_speech(**processor.tts_inputs(["zero"]), max_new_frames=400, seed=0)
    out = run_fresh(
        f"""
        import json, numpy as np
        from transformers import AutoModelForTextToWaveform, pipeline
        model = AutoModelForTextToWaveform.from_pretrained({str(tts_dir)!r}, trust_remote_code=True)
        assert type(model).__name__ == "MelLLMForSpeechLM"
        tts = pipeline("text-to-speech", model={str(tts_dir)!r}, trust_remote_code=True)
        assert type(tts.vocoder).__name__ == "MelLLMGriffinLim"
        result = tts("zero", return_mel=True)
        again = tts("zero")
        typed = tts(" ZERO! ")  # as typed: the saved processor normalises case and punctuation
        np.save({str(tts_dir.parent / "tts_mel.npy")!r}, result["mel"])
        errors = []
        for bad in ("", "one " * 3000):
            try:
                tts(bad)
            except ValueError as error:
                errors.append(str(error))
        print(json.dumps({{"rate": result["sampling_rate"], "len": len(result["audio"]), "dtype": str(result["audio"].dtype),
                          "same": bool(np.array_equal(result["audio"], again["audio"])), "errors": errors,
                          "typed_same": bool(np.array_equal(result["audio"], typed["audio"])),
                          "peak": float(np.abs(result["audio"]).max())}}))
        """,
        tts_dir.parent,
    )
    result = json.loads(out.strip().splitlines()[-1])
    frames = int(expected.mel_lengths[0])
    assert result["rate"] == 16_000
    assert result["dtype"] == "float32"
    assert result["len"] == (frames - 1) * 160 + 400
    assert result["same"]
    assert result["typed_same"]
    assert 0 < result["peak"] <= 1.0
    assert "non-empty" in result["errors"][0]
    assert "too long" in result["errors"][1]
    mel = np.load(tts_dir.parent / "tts_mel.npy")
    np.testing.assert_allclose(mel, expected.mel_features[0, :frames].numpy(), atol=1e-5)


def test_tts_cli_writes_wav_and_png(tts_dir, tmp_path, tts_clips):
    from training.tools.tts import main

    reference = tmp_path / "reference.wav"
    soundfile.write(reference, tts_clips[0][0], 16_000)
    out = tmp_path / "out.wav"
    main(["--model", str(tts_dir), "--text", "zero", "--out", str(out), "--png", str(tmp_path / "mel.png")])
    main(["--model", str(tts_dir), "--text", "zero", "--out", str(tmp_path / "b.wav"), "--reference", str(reference)])
    audio, rate = soundfile.read(out, dtype="float32")
    assert rate == 16_000
    assert len(audio) > 400
    assert np.abs(audio).max() > 0
    assert (tmp_path / "mel.png").stat().st_size > 1000
    assert (tmp_path / "b.png").stat().st_size > 1000  # a reference implies a comparison plot beside the WAV
    with pytest.raises(ValueError, match="non-empty"):
        main(["--model", str(tts_dir), "--text", " ", "--out", str(out)])
