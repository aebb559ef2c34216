"""How MelLLMProcessor reads its call options: transformers' kwargs routing, then padding rows the tokenizer's way.

Options arrive as every transformers processor takes them (flat, or grouped in `text_kwargs` / `audio_kwargs` /
`common_kwargs`, with the tokenizer's own init settings as defaults) and are merged by `ProcessorMixin._merge_kwargs`.
What this processor cannot honour raises, naming the option: truncation that would cut audio placeholders out of a
prompt, and the tokenizer's pair / overflow / stride features, which have no meaning for speech prompts.
"""

from dataclasses import dataclass

from transformers.processing_utils import AudioKwargs, ImagesKwargs, ProcessingKwargs, TextKwargs, VideosKwargs


IGNORE_INDEX = -100
GROUPS = ("text_kwargs", "audio_kwargs", "common_kwargs", "images_kwargs", "videos_kwargs")
# Options transformers defines that a speech prompt cannot use: refused when set to anything but their default.
UNSUPPORTED_TEXT_OPTIONS = (
    "text_pair",
    "text_pair_target",
    "stride",
    "is_split_into_words",
    "return_overflowing_tokens",
    "return_special_tokens_mask",
    "return_length",
    "return_token_type_ids",
    "sanitize_control_tokens",
)
# Image and video options are known too: `apply_chat_template` passes its frame-sampling options to every processor,
# and transformers' audio processors ignore them, as this one does.
KNOWN_OPTIONS = (
    set(TextKwargs.__annotations__)
    | set(AudioKwargs.__annotations__)
    | set(ImagesKwargs.__annotations__)
    | set(VideosKwargs.__annotations__)
    | set(ProcessingKwargs.__annotations__)
    | set(GROUPS)
    | {"images", "videos"}
)


class MelLLMProcessorKwargs(ProcessingKwargs, total=False):
    """transformers' processing kwargs: `text_target` and the padding options in `text_kwargs`, `sampling_rate` in
    `audio_kwargs`, `return_tensors` in `common_kwargs` (or any of them flat)."""


@dataclass(frozen=True)
class CallOptions:
    """The merged options of one `MelLLMProcessor.__call__`."""

    sampling_rate: int | None
    text_target: object
    padding: bool | str
    max_length: int | None
    truncation: bool
    pad_to_multiple_of: int | None
    padding_side: str
    return_tensors: str | None
    return_offsets_mapping: bool
    return_mm_token_type_ids: bool
    return_text_replacement_offsets: bool
    add_special_tokens: bool | None


def call_options(processor, kwargs: dict) -> CallOptions:
    """Check the caller's options, merge them with transformers' rules and this processor's defaults."""
    unknown = sorted(key for key in kwargs if key not in KNOWN_OPTIONS)
    for group in GROUPS:
        unknown += sorted(f"{group}[{key!r}]" for key in kwargs.get(group) or {} if key not in KNOWN_OPTIONS)
    if unknown:
        raise TypeError(f"MelLLMProcessor got unexpected argument(s) {unknown}.")
    for modality in ("images", "videos"):  # `apply_chat_template` passes them, empty, to every processor
        if kwargs.pop(modality, None):
            raise ValueError(f"MelLLMProcessor takes text and audio only; got {modality}.")
    given = [kwargs, kwargs.get("text_kwargs") or {}, kwargs.get("common_kwargs") or {}]
    if not any("padding_side" in group for group in given):  # left, whatever the tokenizer was saved with
        kwargs = {**kwargs, "text_kwargs": {**(kwargs.get("text_kwargs") or {}), "padding_side": "left"}}
    merged = processor._merge_kwargs(
        MelLLMProcessorKwargs, tokenizer_init_kwargs=processor.tokenizer.init_kwargs, **kwargs
    )
    text, audio = merged["text_kwargs"], merged["audio_kwargs"]
    refused = [key for key in UNSUPPORTED_TEXT_OPTIONS if text.get(key) not in (None, False)]
    if refused:
        raise ValueError(f"MelLLMProcessor does not support {refused}: they have no meaning for speech prompts.")
    if (kwargs.get("audio_kwargs") or {}).get("truncation"):  # a flat `truncation` is the text's (both take it)
        raise ValueError(
            "truncation: MelLLMProcessor never cuts audio; split long audio instead (the ASR "
            "pipeline's chunk_length_s, or long-form generate)."
        )
    padding_side = checked_padding_side(text.get("padding_side"))
    return CallOptions(
        sampling_rate=audio.get("sampling_rate"),
        text_target=text.get("text_target"),
        padding=text.get("padding", True),
        max_length=text.get("max_length"),
        truncation=text.get("truncation") not in (None, False, "do_not_truncate"),
        pad_to_multiple_of=text.get("pad_to_multiple_of"),
        padding_side=padding_side,
        return_tensors=text.get("return_tensors", audio.get("return_tensors")),
        return_offsets_mapping=bool(text.get("return_offsets_mapping")),
        return_mm_token_type_ids=bool(merged.get("return_mm_token_type_ids") or text.get("return_mm_token_type_ids")),
        return_text_replacement_offsets=bool(
            merged.get("return_text_replacement_offsets") or text.get("return_text_replacement_offsets")
        ),
        add_special_tokens=text.get("add_special_tokens"),
    )


def truncate_rows(rows: dict[str, list[list]], options: CallOptions, audio_token_id: int) -> dict[str, list[list]]:
    """With `truncation`, cut rows past `max_length` on the right, as the tokenizer does; a cut that would drop
    audio placeholders raises instead (the model needs one per patch)."""
    limit = options.max_length
    if not options.truncation or limit is None:
        return rows
    for i, row in enumerate(rows["input_ids"]):
        if audio_token_id in row[limit:]:
            raise ValueError(
                f"truncation to max_length={limit} would cut audio placeholders out of row {i} ({len(row)} tokens): "
                "MelLLMProcessor never cuts audio; raise max_length or split long audio."
            )
    return {key: [row[:limit] for row in key_rows] for key, key_rows in rows.items()}


def checked_padding_side(side: str | None) -> str:
    """`side`, or "left" for None (the default, as in transformers' processors); anything else raises."""
    side = side or "left"
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}.")
    return side


def padded_length(lengths: list[int], options: CallOptions) -> int | None:
    """The length every row is padded to (None: rows stay as they are), as the tokenizer's padding strategies say."""
    padding = options.padding
    if padding in (False, None, "do_not_pad"):
        return None
    if padding in (True, "longest"):
        length = max(lengths)
    elif padding == "max_length":
        if options.max_length is None:
            raise ValueError("padding='max_length' needs max_length.")
        longest = max(lengths)
        if longest > options.max_length:
            raise ValueError(
                f"A row has {longest} tokens, more than max_length={options.max_length}, and MelLLMProcessor never "
                "truncates (that would drop audio placeholders): raise max_length or use padding='longest'."
            )
        length = options.max_length
    else:
        raise ValueError(f"padding={padding!r}: use True/'longest', 'max_length' (with max_length) or False.")
    multiple = options.pad_to_multiple_of
    return length if not multiple else -(-length // multiple) * multiple


def pad_rows(rows: dict[str, list[list]], pad_values: dict[str, object], side: str, length: int | None) -> dict:
    """Pad every key's rows to `length` on `side` (None: leave them), each with its own pad value; an
    `attention_mask` marks the real positions."""
    masks = [[1] * len(row) for row in rows["input_ids"]]
    if length is None:
        return {**rows, "attention_mask": masks}
    padded: dict[str, list] = {}
    for key, key_rows in [*rows.items(), ("attention_mask", masks)]:
        padded[key] = []
        for row in key_rows:
            pad = [pad_values.get(key, 0)] * (length - len(row))
            padded[key].append(pad + list(row) if side == "left" else list(row) + pad)
    return padded


def check_rectangular(batch: dict[str, list], return_tensors: str | None) -> None:
    """A ragged batch cannot become tensors: say how to pad it instead of failing inside the conversion."""
    if return_tensors is not None and len({len(row) for row in batch["input_ids"]}) > 1:
        raise ValueError(
            f"Rows of different lengths cannot become {return_tensors!r} tensors: pad them (padding=True)."
        )


__all__ = [
    "IGNORE_INDEX",
    "CallOptions",
    "MelLLMProcessorKwargs",
    "call_options",
    "check_rectangular",
    "checked_padding_side",
    "pad_rows",
    "padded_length",
    "truncate_rows",
]
