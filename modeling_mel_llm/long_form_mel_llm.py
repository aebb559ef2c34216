"""Long-form transcription in `generate`: audio longer than one window is read window by window, as Whisper does.

A model trained on short clips reads a few minutes of speech badly in one pass (and the backbone's context may not
even hold it), so `generate` cuts each clip into windows of at most `long_form_window_s` seconds, at the quietest
patch boundary near each window's end (an encoder-free model has no timestamp tokens to seek with), transcribes the
windows as one batch and joins their text. `return_timestamps=True` also returns each window's (start, end) and
tokens as `segments`, in the shape Whisper's long-form `generate` gives them.
Shapes: B batch, L prompt tokens, T mel frames, M mel bins, N windows of the whole batch.
"""

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput, logging

from .configuration_mel_llm import FRAME_SECONDS


logger = logging.get_logger(__name__)

LONG_FORM_WINDOW_S = 30.0  # Whisper's window; the default when `generate` gets no `long_form_window_s`
QUIET_SEARCH_FRACTION = 0.2  # a cut goes at the quietest patch boundary in the last fifth of a window
UNSUPPORTED_LONG_FORM_OPTIONS = ("num_return_sequences", "return_dict_in_generate", "output_scores", "output_logits")


@dataclass
class MelLLMLongFormOutput(ModelOutput):
    """`generate(..., return_timestamps=True)`: the rows `generate` returns (prompt + transcript + end token, right
    padded) and, per row, its windows as `{"start": s, "end": s, "tokens": LongTensor}` (seconds of the clip)."""

    sequences: torch.LongTensor | None = None
    segments: list[list[dict]] | None = None


def _segments(windows, answers: list[list[int]], batch_size: int) -> list[list[dict]]:
    """Whisper's long-form `segments`: per row, each window's start and end (s) and its tokens."""
    segments: list[list[dict]] = [[] for _ in range(batch_size)]
    for w, answer in zip(windows, answers, strict=True):
        segments[w.row].append(
            {
                "start": w.start * FRAME_SECONDS,
                "end": w.end * FRAME_SECONDS,
                "tokens": torch.tensor(answer, dtype=torch.long),
            }
        )
    return segments


@dataclass(frozen=True)
class _Window:
    row: int
    start: int  # first mel frame
    end: int  # one past the last mel frame


def window_bounds(features: torch.Tensor, length: int, window: int, frames_per_patch: int) -> list[tuple[int, int]]:
    """
    Frame ranges that cover `length` real frames of one clip's (T, M) log-mel, each at most `window` frames. Every
    cut but the last lies on a patch boundary, at the lowest smoothed frame energy of the window's last fifth.
    """
    loudness = features[:length].float().mean(-1)
    width = 2 * frames_per_patch + 1  # frames averaged around each candidate cut
    smoothed = torch.nn.functional.avg_pool1d(loudness[None, None], width, stride=1, padding=width // 2)[0, 0]
    search = max(frames_per_patch, int(window * QUIET_SEARCH_FRACTION) // frames_per_patch * frames_per_patch)
    bounds, start = [], 0
    while length - start > window:
        candidates = torch.arange(
            max(start + frames_per_patch, start + window - search), start + window + 1, frames_per_patch
        )
        cut = int(candidates[smoothed[candidates.clamp(max=length - 1)].argmin()])
        bounds.append((start, cut))
        start = cut
    bounds.append((start, length))
    return bounds


class MelLLMLongFormMixin:
    """`generate` with Whisper-style sequential long-form transcription; short audio takes the plain path."""

    def generate(self, inputs: torch.Tensor | None = None, generation_config=None, **kwargs):
        r"""
        transformers' `generate`, plus:
            return_timestamps (`bool`, *optional*): return a `MelLLMLongFormOutput` whose `segments` give each
                window's time span in seconds and its tokens.
            long_form_window_s (`float`, defaults to 30.0): audio longer than this is transcribed window by window
                (cut at quiet points); each window gets the row's prompt and `generate`'s other options.
            segment_separator_token_ids (`list[int]`, *optional*): what goes between two windows' transcripts
                (`processor.segment_separator_token_ids`, one space); defaults to the generation config's.
        """
        return_timestamps = bool(kwargs.pop("return_timestamps", False))
        window_s = float(kwargs.pop("long_form_window_s", LONG_FORM_WINDOW_S))
        separator = kwargs.pop("segment_separator_token_ids", None)
        features = kwargs.get("input_features")
        if features is None:
            if return_timestamps:
                raise ValueError("return_timestamps=True needs audio (input_features) to time.")
            return super().generate(inputs, generation_config, **kwargs)
        window = self._window_frames(window_s)
        mask = kwargs.get("input_features_mask")
        lengths = mask.sum(-1) if mask is not None else torch.full(features.shape[:1], features.shape[1])
        if not return_timestamps and int(lengths.max()) <= window:
            return super().generate(inputs, generation_config, **kwargs)
        settings = (generation_config, window, separator, return_timestamps)
        return self._generate_long_form(inputs, settings, lengths.tolist(), kwargs)

    def _window_frames(self, window_s: float) -> int:
        patch = self.config.frames_per_patch
        window = round(window_s / FRAME_SECONDS) // patch * patch
        if window < patch:
            raise ValueError(f"long_form_window_s={window_s} is shorter than one audio patch.")
        return window

    def _generate_long_form(self, inputs, settings, lengths: list[int], kwargs):
        generation_config, window, separator, return_timestamps = settings
        asked = sorted(key for key in UNSUPPORTED_LONG_FORM_OPTIONS if kwargs.get(key) not in (None, False, 1))
        if asked:
            raise ValueError(f"Long-form transcription (audio over one window, or return_timestamps) ignores {asked}.")
        input_ids = kwargs.pop("input_ids", inputs)
        attention_mask = kwargs.pop("attention_mask", None)
        features = kwargs.pop("input_features")
        kwargs.pop("input_features_mask", None)  # `lengths` carries it
        if input_ids is None:
            raise ValueError("Long-form transcription needs input_ids: the prompt each window is read with.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        prompts = [
            self._prompt_around_audio(ids, real) for ids, real in zip(input_ids, attention_mask.bool(), strict=True)
        ]
        windows = [
            _Window(row, start, end)
            for row, length in enumerate(lengths)
            for start, end in window_bounds(features[row], int(length), window, self.config.frames_per_patch)
        ]
        answers = []
        for first in range(0, len(windows), input_ids.shape[0]):  # the caller's batch size bounds memory
            group = windows[first : first + input_ids.shape[0]]
            answers += self._transcribe_windows(group, prompts, features, generation_config, kwargs)
        separator = self._separator(separator, generation_config, len(windows) > len(lengths))
        joined = self._join_windows(input_ids, windows, answers, separator, generation_config)
        return (
            MelLLMLongFormOutput(sequences=joined, segments=_segments(windows, answers, len(lengths)))
            if return_timestamps
            else joined
        )

    def _prompt_around_audio(self, ids: torch.Tensor, real: torch.Tensor) -> tuple[list[int], list[int]]:
        """(tokens before, tokens after) the row's one run of audio placeholders, padding dropped."""
        tokens = ids[real].tolist()
        slots = [i for i, token in enumerate(tokens) if token == self.config.audio_token_id]
        if not slots or slots[-1] - slots[0] + 1 != len(slots):
            raise ValueError("Long-form transcription needs exactly one clip (one run of audio placeholders) per row.")
        return tokens[: slots[0]], tokens[slots[-1] + 1 :]

    def _transcribe_windows(self, group, prompts, features, generation_config, kwargs) -> list[list[int]]:
        """Each window's answer tokens (up to, not including, the end token)."""
        patch = self.config.frames_per_patch
        rows = [
            prompts[w.row][0] + [self.config.audio_token_id] * -(-(w.end - w.start) // patch) + prompts[w.row][1]
            for w in group
        ]
        width, frames = max(map(len, rows)), max(w.end - w.start for w in group)
        pad = self._pad_token_id(generation_config)
        input_ids = torch.full((len(group), width), pad, dtype=torch.long, device=features.device)
        attention_mask = torch.zeros_like(input_ids)
        window_features = features.new_zeros(len(group), frames, features.shape[-1])
        window_mask = torch.zeros(len(group), frames, dtype=torch.bool, device=features.device)
        for i, (w, row) in enumerate(zip(group, rows, strict=True)):  # left padding, as decoder-only generation needs
            input_ids[i, width - len(row) :] = torch.tensor(row)
            attention_mask[i, width - len(row) :] = 1
            window_features[i, : w.end - w.start] = features[w.row, w.start : w.end]
            window_mask[i, : w.end - w.start] = True
        output = super().generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            input_features=window_features,
            input_features_mask=window_mask,
            generation_config=generation_config,
            **kwargs,
        )
        stops = set(self._end_token_ids(generation_config)) | {pad}
        answers = []
        for row in output[:, width:].tolist():
            end = next((i for i, token in enumerate(row) if token in stops), len(row))
            answers.append(row[:end])
        return answers

    def _separator(self, separator, generation_config, needed: bool) -> list[int]:
        if separator is None:
            separator = getattr(generation_config or self.generation_config, "segment_separator_token_ids", None)
        if separator is None and needed:
            logger.warning_once(
                "Long-form transcription joins its windows without a separator, as the generation config has no "
                "segment_separator_token_ids: pass segment_separator_token_ids=processor.segment_separator_token_ids."
            )
        return list(separator or [])

    def _join_windows(self, input_ids, windows, answers, separator: list[int], generation_config) -> torch.Tensor:
        """Per row: its prompt, its windows' answers in order (with `separator` between them) and one end token,
        right-padded to one width."""
        joined: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
        for w, answer in zip(windows, answers, strict=True):
            if joined[w.row] and answer:
                joined[w.row] += separator
            joined[w.row] += answer
        ends, pad = self._end_token_ids(generation_config), self._pad_token_id(generation_config)
        rows = [input_ids[r].tolist() + tokens + ends[:1] for r, tokens in enumerate(joined)]
        sequences = torch.full((len(rows), max(map(len, rows))), pad, dtype=torch.long, device=input_ids.device)
        for r, row in enumerate(rows):
            sequences[r, : len(row)] = torch.tensor(row)
        return sequences

    def _end_token_ids(self, generation_config) -> list[int]:
        eos = (generation_config or self.generation_config).eos_token_id
        return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)

    def _pad_token_id(self, generation_config) -> int:
        config = generation_config or self.generation_config
        if config.pad_token_id is not None:
            return int(config.pad_token_id)
        ends = self._end_token_ids(config)
        return ends[0] if ends else 0
