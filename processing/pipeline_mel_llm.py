"""MelLLMSpeechRecognitionPipeline: `pipeline("automatic-speech-recognition")` for a decoder-only speech LLM.

The stock ASR pipeline treats unknown models as CTC; this one prompts, generates and merges chunk transcripts.
It ships with the processor files and is found through `config.custom_pipelines`, so nothing registers globally.
"""

import torch
from torch.utils.data import DataLoader
from transformers.pipelines.base import ChunkPipeline
from transformers.pipelines.pt_utils import PipelineChunkIterator, PipelineIterator, PipelinePackIterator
from transformers.utils import logging

from .audio_loading import load_audio


logger = logging.get_logger(__name__)
# Text-tokenizer options that third-party ASR callers pass to every pipeline; this one reads audio, so they do nothing.
TOKENIZER_ONLY_KWARGS = ("truncation", "padding")


def merge_overlapping_words(left: list[str], right: list[str]) -> list[str]:
    """
    Join the transcripts of two overlapping chunks: find the alignment of `left`'s tail with `right`'s head that
    agrees on the most words (ties → longer overlap), keep the first half of that overlap from `left` and the rest
    from `right`. Without any agreeing word the two are concatenated, so nothing is dropped.
    """
    best_score, best_overlap, best_matches = 0.0, 0, 0
    for overlap in range(1, min(len(left), len(right)) + 1):
        matches = sum(a == b for a, b in zip(left[-overlap:], right[:overlap], strict=True))
        score = matches / overlap + overlap * 1e-6
        if matches > 0 and score > best_score:
            best_score, best_overlap, best_matches = score, overlap, matches
    if best_matches == 0:
        return left + right
    keep_left = best_overlap // 2
    return left[: len(left) - best_overlap + keep_left] + right[keep_left:]


def _collate_as_lists(items: list[dict]) -> dict:
    """Chunks stay numpy arrays of different lengths; the processor pads them inside `_forward`."""
    return {key: [item[key] for item in items] for key in items[0]}


class MelLLMSpeechRecognitionPipeline(ChunkPipeline):
    """
    Transcribe audio with a Mel-LLM model.

    Inputs: a file path, the bytes of a file, a numpy array at the feature extractor's rate, a dict with
    `raw`/`array` and `sampling_rate` (any rate: resampled with soxr), or a `datasets` audio dict (`path`/`bytes`).
    Multi-channel audio is down-mixed. Long audio: `chunk_length_s` splits it into windows overlapping by
    `stride_length_s` on each side (default `chunk_length_s / 6`), transcribed independently (batched with
    `batch_size`) and merged on their overlapping words; memory stays that of one batch of chunks.
    Without `chunk_length_s`, audio longer than the model's window (30 s) is read window by window by `generate`
    (Whisper's sequential long-form). `return_timestamps=True` (or `"chunk"`) adds `chunks`: each window's own text
    and (start, end) in seconds.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> asr = pipeline("automatic-speech-recognition", model="path/to/mel-llm", trust_remote_code=True)
    >>> asr("speech.wav", chunk_length_s=20, batch_size=4, generate_kwargs={"num_beams": 2})
    {'text': '...'}
    ```
    """

    _load_processor = True
    _load_tokenizer = True
    _load_feature_extractor = True
    _load_image_processor = False

    def _sanitize_parameters(
        self,
        chunk_length_s: float | None = None,
        stride_length_s: float | None = None,
        generate_kwargs: dict | None = None,
        max_new_tokens: int | None = None,
        return_timestamps: bool | str | None = None,
        **kwargs,
    ):
        ignored = sorted(key for key in kwargs if key in TOKENIZER_ONLY_KWARGS)
        if ignored:  # `evaluate`'s ASR evaluator passes truncation=True to every pipeline
            logger.warning_once(f"The Mel-LLM ASR pipeline ignores {ignored}: they configure text tokenisation only.")
        unknown = sorted(key for key in kwargs if key not in TOKENIZER_ONLY_KWARGS)
        if unknown:
            raise TypeError(f"Unexpected argument(s) for the Mel-LLM ASR pipeline: {unknown}.")
        if return_timestamps not in (None, False, True, "chunk"):
            raise ValueError(f"return_timestamps={return_timestamps!r}: only chunk-level timestamps are available.")
        preprocess_params = {}
        if chunk_length_s is not None:
            preprocess_params["chunk_length_s"] = chunk_length_s
        if stride_length_s is not None:
            preprocess_params["stride_length_s"] = stride_length_s
        forward_params = {"generate_kwargs": dict(generate_kwargs or {}), "return_timestamps": bool(return_timestamps)}
        if max_new_tokens is not None:
            forward_params["generate_kwargs"]["max_new_tokens"] = max_new_tokens
        return preprocess_params, forward_params, {"return_timestamps": bool(return_timestamps)}

    @property
    def sampling_rate(self) -> int:
        return self.processor.feature_extractor.sampling_rate

    def preprocess(self, inputs, chunk_length_s: float = 0.0, stride_length_s: float | None = None):
        audio = load_audio(inputs, self.sampling_rate)
        if not chunk_length_s:
            yield {"audio": audio, "is_last": True, "start_s": 0.0}
            return
        if stride_length_s is None:
            stride_length_s = chunk_length_s / 6
        chunk = round(chunk_length_s * self.sampling_rate)
        stride = round(stride_length_s * self.sampling_rate)
        step = chunk - 2 * stride
        if step <= 0:
            raise ValueError(
                f"chunk_length_s={chunk_length_s} must be more than twice stride_length_s={stride_length_s}."
            )
        for start in range(0, len(audio), step):
            end = start + chunk
            is_last = end >= len(audio)
            yield {"audio": audio[start:end], "is_last": is_last, "start_s": start / self.sampling_rate}
            if is_last:
                return

    def _forward(self, model_inputs: dict, generate_kwargs: dict | None = None, return_timestamps: bool = False):
        batched = isinstance(model_inputs["audio"], list)
        clips = model_inputs["audio"] if batched else [model_inputs["audio"]]
        inputs = self.processor(audio=clips, sampling_rate=self.sampling_rate, return_tensors="pt")
        inputs = inputs.to(self.model.device)
        inputs["input_features"] = inputs["input_features"].to(self.model.dtype)
        separator = self.processor.segment_separator_token_ids  # audio over one window: long-form `generate`
        settings = {"segment_separator_token_ids": separator, **(generate_kwargs or {})}
        with torch.inference_mode():
            output = self.model.generate(**inputs, return_timestamps=return_timestamps, **settings)
        tokens = output.sequences if return_timestamps else output
        new_tokens = tokens[:, inputs["input_ids"].shape[1] :]
        texts = [t.strip() for t in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]
        starts = model_inputs["start_s"] if batched else [model_inputs["start_s"]]
        rows = output.segments if return_timestamps else [[] for _ in clips]
        segments = [
            self._timed_segments(row, start, len(clip) / self.sampling_rate)
            for row, start, clip in zip(rows, starts, clips, strict=True)
        ]
        return {
            "text": texts if batched else texts[0],
            "is_last": model_inputs["is_last"],
            "segments": segments if batched else segments[0],
        }

    def _timed_segments(self, segments: list[dict], start_s: float, duration_s: float) -> list[dict]:
        """`generate`'s windows of one clip as chunks: text and (start, end) in the input's seconds; the last one
        ends where the clip ends (mel frames stop up to one window short of it)."""
        chunks = []
        for i, segment in enumerate(segments):
            end = duration_s if i == len(segments) - 1 else segment["end"]
            text = self.processor.tokenizer.decode(segment["tokens"], skip_special_tokens=True).strip()
            chunks.append({"text": text, "timestamp": (start_s + segment["start"], start_s + end)})
        return chunks

    def postprocess(self, model_outputs: list[dict], return_timestamps: bool = False) -> dict:
        """Merge the chunk transcripts; with `return_timestamps`, also list each window's text and (start, end) in
        seconds: the pipeline's chunks, and within each the windows of long-form `generate`."""
        words: list[str] = []
        for output in model_outputs:
            words = merge_overlapping_words(words, output["text"].split())
        result = {"text": " ".join(words)}
        if return_timestamps:
            result["chunks"] = [segment for output in model_outputs for segment in output["segments"]]
        return result

    def get_iterator(
        self, inputs, num_workers: int, batch_size: int, preprocess_params, forward_params, postprocess_params
    ):
        """ChunkPipeline's iterator with a collate that keeps variable-length chunks as lists."""
        dataset = PipelineChunkIterator(inputs, self.preprocess, preprocess_params)
        collate = _collate_as_lists if batch_size > 1 else (lambda items: items[0])
        loader = DataLoader(dataset, num_workers=0, batch_size=batch_size, collate_fn=collate)
        model_iterator = PipelinePackIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)


__all__ = ["MelLLMSpeechRecognitionPipeline", "merge_overlapping_words"]
