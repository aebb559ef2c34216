"""Audio from anything a user hands the pipeline (path, bytes, array, dict) → mono float32 at the target rate."""

import io
import os

import numpy as np
import soundfile
import soxr

from .feature_extraction_mel_llm import pcm_to_float, to_mono


def _read(source, name: str) -> tuple[np.ndarray, int]:
    try:
        audio, rate = soundfile.read(source, dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise ValueError(f"Could not decode audio from {name}: {error}") from error
    if audio.size == 0:
        raise ValueError(f"Audio from {name} is empty (0 samples).")
    return audio, rate


def load_audio(inputs, sampling_rate: int) -> np.ndarray:
    """
    Return mono float32 samples at `sampling_rate` from: a file path; the bytes of a file; a numpy array (taken to
    be at `sampling_rate` already); a dict with `raw` or `array` and `sampling_rate` (the pipeline and `datasets`
    formats); or a `datasets` `Audio(decode=False)` dict with `path` and/or `bytes`. Errors name the input.
    """
    if isinstance(inputs, (str, os.PathLike)):
        name = f"file {os.fspath(inputs)!r}"
        if not os.path.isfile(inputs):
            raise ValueError(f"Could not read audio: {name} does not exist.")
        audio, rate = _read(os.fspath(inputs), name)
    elif isinstance(inputs, (bytes, bytearray)):
        name = f"{len(inputs)} bytes"
        audio, rate = _read(io.BytesIO(inputs), name)
    elif isinstance(inputs, dict):
        if inputs.get("bytes") is not None:
            return load_audio(inputs["bytes"], sampling_rate)
        if inputs.get("raw") is None and inputs.get("array") is None and inputs.get("path") is not None:
            return load_audio(inputs["path"], sampling_rate)
        array = inputs.get("raw", inputs.get("array"))
        rate = inputs.get("sampling_rate")
        if array is None or rate is None:
            raise ValueError(
                "An audio dict needs 'raw' (or 'array') and 'sampling_rate', or 'path'/'bytes'; got keys "
                f"{sorted(inputs)}."
            )
        name, audio = "the audio dict", np.asarray(array)
    elif isinstance(inputs, np.ndarray):
        name, audio, rate = "the audio array", inputs, sampling_rate
    else:
        raise TypeError(
            f"Unsupported audio input of type {type(inputs).__name__}: pass a file path, bytes, a numpy array or a "
            "dict with 'raw'/'array' and 'sampling_rate'."
        )
    audio = to_mono(np.asarray(audio), f"Audio from {name}")
    audio = pcm_to_float(audio)
    if audio.dtype.kind != "f":
        raise TypeError(f"Audio from {name} has dtype {audio.dtype}; expected float or integer PCM samples.")
    audio = audio.astype(np.float32, copy=False)
    if rate != sampling_rate:
        audio = soxr.resample(audio, rate, sampling_rate).astype(np.float32, copy=False)
    return audio


__all__ = ["load_audio"]
