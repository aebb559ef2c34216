"""MelLLMTextToSpeechPipeline: `pipeline("text-to-speech")` for a Mel-LLM with a TTS head.

The stock text-to-audio pipeline expects a spectrogram or waveform model with `generate`; this one builds the TTS
prompt, calls `generate_speech` and vocodes the log-mel (vocoder_mel_llm.py: the bundled HiFi-GAN, else
Griffin-Lim). It ships with the processor files and is found through `config.custom_pipelines`.
"""

import numpy as np
import torch
from transformers.pipelines.base import Pipeline

from .vocoder_mel_llm import load_vocoder


DEFAULT_MAX_NEW_FRAMES = 1000  # 10 s of speech
SPEECH_OPTIONS = (
    "max_new_frames",
    "temperature",
    "stop_threshold",
    "min_new_frames",
    "seed",
    "max_frames_per_word",
    "top_k",
    "top_p",
    "repetition_penalty",
)


class MelLLMTextToSpeechPipeline(Pipeline):
    """
    Speak text with a Mel-LLM that has a TTS head (`config.tts_head=True`).

    Call arguments: `max_new_frames` (10 ms frames, default 1000), `temperature` (latent noise scale, default 1.0;
    0 is deterministic), `stop_threshold` (default 0.5), `seed` (default 0, so a text always gives the same audio),
    `return_mel` (also return the predicted log-mel), `speech_prompt` (zero-shot continuation: a recorded opening of
    the text at 16 kHz, which the output starts with and goes on from), and for discrete latents `top_k`, `top_p`,
    `repetition_penalty`. Empty text, or text whose prompt leaves no room in the
    language model's context, raises a `ValueError`.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> tts = pipeline("text-to-speech", model="path/to/mel-llm", trust_remote_code=True)
    >>> out = tts("turn the lights on")
    >>> out["sampling_rate"], out["audio"].dtype
    (16000, dtype('float32'))
    ```
    """

    _load_processor = True
    _load_tokenizer = True
    _load_feature_extractor = True
    _load_image_processor = False
    _pipeline_calls_generate = False

    def __init__(self, *args, vocoder=None, **kwargs):
        super().__init__(*args, **kwargs)
        if not getattr(self.model.config, "tts_head", False):
            raise ValueError(
                "This model has no TTS head (config.tts_head=False); it cannot be used for text-to-speech."
            )
        self.vocoder = vocoder or load_vocoder(self.model.name_or_path, self.processor.feature_extractor)

    @property
    def sampling_rate(self) -> int:
        return self.processor.feature_extractor.sampling_rate

    def _sanitize_parameters(
        self,
        max_new_frames: int | None = None,
        temperature: float | None = None,
        stop_threshold: float | None = None,
        seed: int | None = None,
        return_mel: bool | None = None,
        speech_prompt: np.ndarray | None = None,
        forward_params: dict | None = None,
        generate_kwargs: dict | None = None,
        **kwargs,
    ):
        """Speech options come as keywords or, as transformers' text-to-audio pipeline takes them, in
        `forward_params` / `generate_kwargs`; each reaches `generate_speech` once, and unknown ones raise."""
        speech_keywords = {key: kwargs.pop(key) for key in list(kwargs) if key in SPEECH_OPTIONS}  # e.g. top_k
        if kwargs:
            raise TypeError(f"Unexpected argument(s) for the Mel-LLM TTS pipeline: {sorted(kwargs)}.")
        given = {**(generate_kwargs or {}), **(forward_params or {})}
        unknown = sorted(set(given) - set(SPEECH_OPTIONS))
        if unknown:
            raise TypeError(f"generate_speech takes {list(SPEECH_OPTIONS)} as forward_params, not {unknown}.")
        keywords = {"max_new_frames": max_new_frames, "temperature": temperature, "stop_threshold": stop_threshold}
        keywords = {
            key: value for key, value in {**speech_keywords, **keywords, "seed": seed}.items() if value is not None
        }
        twice = sorted(set(keywords) & set(given) | set(forward_params or {}) & set(generate_kwargs or {}))
        if twice:
            raise ValueError(f"Speech option(s) {twice} given twice.")
        options = {"max_new_frames": DEFAULT_MAX_NEW_FRAMES, "seed": 0, **given, **keywords}
        return {"speech_prompt": speech_prompt}, options, {"return_mel": bool(return_mel)}

    def preprocess(self, text: str, speech_prompt: np.ndarray | None = None) -> dict:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"Text to speak must be a non-empty string, got {text!r}.")
        opening = (
            {} if speech_prompt is None else {"speech_prompt": [speech_prompt], "sampling_rate": self.sampling_rate}
        )
        inputs = self.processor.tts_inputs([text], **opening)
        spare = self.model.check_context(inputs["input_ids"].shape[1] + 1)  # refuses a text with no room to speak
        return {**inputs, "room": None if spare is None else spare + 1}

    def _forward(self, model_inputs: dict, max_new_frames: int = DEFAULT_MAX_NEW_FRAMES, **generate_kwargs) -> dict:
        room = model_inputs.pop("room")
        if room is not None:  # frames that still fit in the context
            max_new_frames = min(max_new_frames, room * self.model.config.frames_per_patch)
        inputs = {key: value.to(self.model.device) for key, value in model_inputs.items()}
        with torch.inference_mode():
            speech = self.model.generate_speech(**inputs, max_new_frames=max_new_frames, **generate_kwargs)
        length = int(speech.mel_lengths[0])
        log_mel = speech.mel_features[0, :length].float()
        with torch.inference_mode():
            waveform = self.vocoder.to(log_mel.device)(log_mel)
        return {"audio": waveform.cpu().numpy().astype(np.float32), "mel": log_mel.cpu().numpy()}

    def postprocess(self, model_outputs: dict, return_mel: bool = False) -> dict:
        result = {"audio": model_outputs["audio"], "sampling_rate": self.sampling_rate}
        if return_mel:
            result["mel"] = model_outputs["mel"]
        return result


__all__ = ["MelLLMTextToSpeechPipeline"]
