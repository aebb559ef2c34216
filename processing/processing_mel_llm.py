"""MelLLMProcessor: prompts with one audio placeholder per patch, labels for training, decoding. Next: the model."""

import itertools

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin
from transformers.audio_utils import AudioInput
from transformers.processing_utils import Unpack

from .espeak_mel_llm import phonemize_words
from .feature_extraction_mel_llm import PROCESSOR_AUTO_MAP, MelLLMFeatureExtractor
from .pipeline_mel_llm import MelLLMSpeechRecognitionPipeline  # noqa: F401  (saved with the processor for the Hub)
from .pipeline_tts_mel_llm import MelLLMTextToSpeechPipeline  # noqa: F401  (saved with the processor for the Hub)
from .processor_options_mel_llm import (
    IGNORE_INDEX,
    MelLLMProcessorKwargs,
    call_options,
    check_rectangular,
    checked_padding_side,
    pad_rows,
    padded_length,
    truncate_rows,
)
from .text_normalization_mel_llm import normalize_tts_text
from .unit_spelling_mel_llm import one_hot_posteriors, text_to_units


AUDIO_TOKEN = "<|audio|>"
ASR_INSTRUCTION = "Transcribe the audio clip into text."  # Phi-4-MM's Open ASR prompt
TTS_INSTRUCTION = "Read this text aloud:"  # our choice; the paper's TTS prompt is not known
CHAT_TOKENS = ("<|user|>", "<|assistant|>", "<|end|>")


def phi4mm_chat_template(audio_token: str = AUDIO_TOKEN) -> str:
    """Phi-4-MM's format, `<|user|><|audio|>instruction<|end|><|assistant|>`, with audio content items."""
    return (
        "{% for message in messages %}{{ '<|' + message['role'] + '|>' }}"
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for content in message['content'] %}"
        f"{{% if content['type'] == 'audio' %}}{{{{ '{audio_token}' }}}}"
        "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
        "{% endfor %}{% endif %}{{ '<|end|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
    )


TTS_TEXT_UNITS = ("tokens", "phonemes")


class MelLLMProcessor(ProcessorMixin):
    r"""
    Wraps a [`MelLLMFeatureExtractor`] and the backbone's tokenizer. Each audio placeholder in the prompt is expanded
    to exactly `feature_extractor.num_audio_tokens(num_samples)` tokens, so the model can scatter one patch per token.

    Args:
        feature_extractor ([`MelLLMFeatureExtractor`]): waveform → log-mel.
        tokenizer ([`PreTrainedTokenizerBase`]): the backbone's tokenizer; must know `audio_token` as one token.
        chat_template (`str`, *optional*): Jinja template rendering `{"type": "audio"}` items as `audio_token`;
            defaults to Phi-4-MM's chat format.
        audio_token (`str`, defaults to `"<|audio|>"`): the placeholder token.
        instruction (`str`, defaults to Phi-4-MM's ASR instruction): the prompt used when only audio is given.
        tts_interleave_words (`bool`, defaults to `False`): how a TTS row is laid out. `False`: the whole text, then
            the whole clip's patches. `True`: each word's tokens right before that word's patches (ELLA-V's
            alignment-guided ordering), so the word being spoken is always the nearest text and the model cannot
            lose its place in a long sentence. Training then needs each word's start time (`word_starts`, which
            the synthetic corpus records); for synthesis each word gets one placeholder that `generate_speech`
            fills with patches until the stop head ends the word.
        tts_text_units (`str`, defaults to `"tokens"`): what a TTS model reads: `"tokens"`, the words as the
            tokenizer splits them, or `"phonemes"`, espeak-ng's pronunciation of each word (ASCII mnemonics, needs
            `espeakng-loader`), so that a word never seen in training is still spoken as written.
        speech_units (`str`, *optional*), unit_vocabulary (`list[str]`, *optional*): for a model with
            `frontend="unified"` (TESU), its `config.units` and `config.unit_vocabulary`: `text_as_speech` items are
            spelled into these units.

    Example:

    ```python
    >>> processor = MelLLMProcessor.from_text_tokenizer(tokenizer)
    >>> batch = processor(audio=[clip_a, clip_b], sampling_rate=16000, text_target=["one", "two"])
    >>> sorted(batch.keys())
    ['attention_mask', 'input_features', 'input_features_mask', 'input_ids', 'labels']
    ```
    """

    valid_processor_kwargs = MelLLMProcessorKwargs
    text_kwargs = {"padding": True, "return_tensors": "pt"}  # padding_side "left" unless the caller says otherwise

    def __init__(
        self,
        feature_extractor=None,
        tokenizer=None,
        chat_template: str | None = None,
        audio_token: str = AUDIO_TOKEN,
        instruction: str = ASR_INSTRUCTION,
        tts_interleave_words: bool = False,
        tts_text_units: str = "tokens",
        speech_units: str | None = None,
        unit_vocabulary: list[str] | None = None,
    ):
        if chat_template is None:
            chat_template = phi4mm_chat_template(audio_token)
        if tts_text_units == "characters":  # processors saved before commit 49b21fd may record it
            raise ValueError(
                "tts_text_units='characters' was removed after commit 49b21fd (it did worse than tokens; "
                "docs/RESULTS.md). Use mel-llm at that commit for such a model."
            )
        if tts_text_units not in TTS_TEXT_UNITS:
            raise ValueError(f"tts_text_units={tts_text_units!r}; choose one of {TTS_TEXT_UNITS}.")
        super().__init__(feature_extractor, tokenizer, chat_template=chat_template)
        self.auto_map = dict(PROCESSOR_AUTO_MAP)  # what save_pretrained writes: to_dict() round-trips through it
        self.audio_token = audio_token
        self.instruction = instruction
        self.tts_interleave_words = tts_interleave_words
        self.tts_text_units = tts_text_units
        if (speech_units is None) != (unit_vocabulary is None):
            raise ValueError("Give speech_units and unit_vocabulary together (a unified model's config has both).")
        self.speech_units, self.unit_vocabulary = speech_units, unit_vocabulary
        self.audio_token_id = tokenizer.convert_tokens_to_ids(audio_token)
        if self.audio_token_id is None or self.audio_token_id == tokenizer.unk_token_id:
            raise ValueError(
                f"The tokenizer does not know the audio token {audio_token!r}; build the processor with "
                "MelLLMProcessor.from_text_tokenizer(tokenizer), which adds it."
            )

    @classmethod
    def from_text_tokenizer(cls, tokenizer, feature_extractor: MelLLMFeatureExtractor | None = None, **kwargs):
        """Add the audio placeholder and Phi-4-MM chat tokens to a text LM's tokenizer and wrap it."""
        audio_token = kwargs.get("audio_token", AUDIO_TOKEN)
        vocab = tokenizer.get_vocab()
        new_tokens = [t for t in (audio_token, *CHAT_TOKENS) if t not in vocab]
        if new_tokens:
            tokenizer.add_special_tokens({"additional_special_tokens": new_tokens}, replace_extra_special_tokens=False)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(feature_extractor or MelLLMFeatureExtractor(), tokenizer, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", *self.feature_extractor.model_input_names]

    def build_prompt(self, instruction: str | None = None) -> str:
        """The ASR prompt for one clip, rendered with the chat template."""
        messages = [
            {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": instruction or self.instruction}]}
        ]
        return self.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def apply_transcription_request(
        self,
        audio,
        prompt: str | list[str | None] | None = None,
        tokenize: bool = True,
        sampling_rate: int | None = None,
        **kwargs,
    ) -> BatchFeature | list[str]:
        """
        ASR inputs without writing the prompt, as transformers' speech LLMs offer it (Voxtral, Audio Flamingo 3).

        Args:
            audio: a clip or a list of clips: file paths (read and resampled to 16 kHz), arrays or tensors (at
                `sampling_rate`, default 16000).
            prompt: the instruction for every clip, or one per clip (`None` in a list: the default instruction).
            tokenize: `False` returns the prompt strings (one unexpanded audio placeholder each), which
                `processor(text=prompts, audio=clips)` turns into the same inputs.
            **kwargs: passed to `__call__` (e.g. `return_tensors`, `padding`).
        """
        from .audio_loading import load_audio

        items = list(audio) if isinstance(audio, (list, tuple)) else [audio]
        if not items:
            raise ValueError("audio must hold at least one clip.")
        rate = self.feature_extractor.sampling_rate
        clips = [load_audio(item, rate) if isinstance(item, str) else item for item in items]
        if prompt is None or isinstance(prompt, str):
            prompts = [prompt] * len(clips)
        elif len(prompt) != len(clips):
            raise ValueError(f"Got {len(prompt)} prompts for {len(clips)} clips; give one per clip, or one for all.")
        else:
            prompts = list(prompt)
        if not all(instruction is None or isinstance(instruction, str) for instruction in prompts):
            raise TypeError("Each prompt must be a string or None.")
        texts = [self.build_prompt(instruction) for instruction in prompts]
        if not tokenize:
            return texts
        all_paths = all(isinstance(item, str) for item in items)
        return self(text=texts, audio=clips, sampling_rate=rate if all_paths else sampling_rate, **kwargs)

    def build_tts_prompt(self, text: str) -> str:
        """The TTS prompt for one text: the spoken audio follows `<|assistant|>` as audio tokens."""
        content = f"{TTS_INSTRUCTION} {text.strip()}".rstrip()  # no text: the instruction alone (interleaved rows)
        return self.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )

    def tts_units(self, text: str) -> list[str]:
        """What the model reads for each word of normalised `text`: the word itself, or with
        `tts_text_units="phonemes"` espeak-ng's pronunciation of it, which any spelling has."""
        if self.tts_text_units == "phonemes":
            return phonemize_words(text)
        return text.split()

    def _tts_prompt_ids(self, text: str, num_patches: int) -> list[int]:
        """Token ids of the TTS prompt for `text` plus `num_patches` placeholders."""
        prompt = self.build_tts_prompt(" ".join(self.tts_units(text))) + self.audio_token * num_patches
        return self._encode(prompt)["input_ids"]

    def _spell(self, text: str) -> list[int]:
        """Token ids of `text` to speak."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _interleaved_tts_ids(self, text: str, patches_per_word: list[int] | None) -> list[int]:
        """The TTS prompt without the text, then each word's tokens and its patches' placeholders (one each without
        audio: a slot for `generate_speech` to fill)."""
        ids = self._encode(self.build_tts_prompt(""))["input_ids"]
        for index, word in enumerate(self.tts_units(text)):
            ids += self._spell(" " + word) + [self.audio_token_id] * (
                patches_per_word[index] if patches_per_word else 1
            )
        return ids

    def patches_per_word(self, word_starts: list[float], num_patches: int, text: str, index: int = 0) -> list[int]:
        """
        How many of a clip's `num_patches` patches belong to each word of `text`, from the words' start times in
        seconds: each word starts at the patch nearest its start, and gets at least one.
        """
        words = text.split()
        if len(word_starts) != len(words):
            raise ValueError(
                f"word_starts[{index}] has {len(word_starts)} times for the {len(words)} words of {text!r}."
            )
        if num_patches < len(words):
            raise ValueError(f"Clip {index} has {num_patches} patches for {len(words)} words; it is too short.")
        extractor = self.feature_extractor
        seconds_per_patch = extractor.seconds_per_patch
        bounds = [0]
        for position, start in enumerate(word_starts[1:], start=1):
            nearest = round(start / seconds_per_patch)
            bounds.append(min(max(nearest, bounds[-1] + 1), num_patches - (len(words) - position)))
        bounds.append(num_patches)
        return [end - begin for begin, end in itertools.pairwise(bounds)]

    def tts_inputs(
        self,
        text: str | list[str],
        audio=None,
        sampling_rate: int | None = None,
        padding_side: str | None = "left",
        word_starts: list[list[float]] | None = None,
        speech_prompt=None,
    ) -> BatchFeature:
        """
        Build TTS inputs: the prompt that asks for `text` to be spoken and, with `audio` (training), one audio
        placeholder per patch of that clip plus its log-mel as `mel_targets`.

        Args:
            text (`str` or `list[str]`): what to say, as people type it: `normalize_tts_text` spells out numbers,
                money, times and symbols and drops case and punctuation. Text without words raises a `ValueError`.
            audio (array or list of arrays, *optional*): the spoken clips to learn, one per text.
            sampling_rate (`int`, *optional*): rate of `audio` (must be 16000).
            padding_side (`str`, defaults to `"left"`): left padding lets a batch be generated from directly.
            word_starts (`list[list[float]]`, *optional*): with `tts_interleave_words` and audio, the start time
                (seconds) of each word of each text.
            speech_prompt (array or list of arrays, *optional*): for zero-shot continuation, each text's recorded
                opening (e.g. its first 3 s, at `sampling_rate`), which `generate_speech` continues.

        Returns:
            `BatchFeature` with `input_ids`, `attention_mask`, and with audio `labels` (all -100: no text loss),
            `mel_targets` (B, T, M) and `mel_target_mask` (B, T); with `speech_prompt`, `speech_prompt` (B, T, M) and
            `speech_prompt_mask` (B, T).
        """
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise ValueError("Got an empty list of texts to speak.")
        spoken = []  # as typed → words: numbers, symbols, case, punctuation
        for i, item in enumerate(texts):
            words = normalize_tts_text(item) if isinstance(item, str) else ""
            if not words:
                raise ValueError(f"text[{i}] has no words to speak ({item!r}); give the words to speak.")
            spoken.append(words)
        texts = spoken
        num_patches = [0] * len(texts)
        features = {}
        if audio is not None:
            clips = self.feature_extractor.validated_clips(audio, sampling_rate)
            if len(clips) != len(texts):
                raise ValueError(f"Got {len(clips)} audio clips for {len(texts)} texts; give one clip per text.")
            extracted = self.feature_extractor.batch_features(clips, return_tensors="pt")
            features = {
                "mel_targets": extracted["input_features"],
                "mel_target_mask": extracted["input_features_mask"],
            }
            num_patches = [self.feature_extractor.num_audio_tokens(len(clip)) for clip in clips]
        if not self.tts_interleave_words:
            prompt_ids = [self._tts_prompt_ids(item, count) for item, count in zip(texts, num_patches, strict=True)]
        elif audio is None:
            prompt_ids = [self._interleaved_tts_ids(item, None) for item in texts]
        else:
            if word_starts is None or len(word_starts) != len(texts):
                raise ValueError(
                    "This processor interleaves words and speech (tts_interleave_words=True): training rows need "
                    "word_starts, the start time of every word of every text (the synthetic corpus records them)."
                )
            prompt_ids = [
                self._interleaved_tts_ids(item, self.patches_per_word(starts, count, item, i))
                for i, (item, starts, count) in enumerate(zip(texts, word_starts, num_patches, strict=True))
            ]
        if speech_prompt is not None:
            features.update(self._speech_prompt_features(speech_prompt, sampling_rate, len(texts), audio is None))
        side = checked_padding_side(padding_side)
        batch = pad_rows({"input_ids": prompt_ids}, {"input_ids": self._pad_id}, side, max(map(len, prompt_ids)))
        batch = {key: torch.tensor(value) for key, value in batch.items()}
        if audio is not None:
            batch["labels"] = torch.full_like(batch["input_ids"], IGNORE_INDEX)
        return BatchFeature({**batch, **features}, tensor_type="pt")

    def _speech_prompt_features(self, clips, sampling_rate, num_texts: int, generating: bool) -> dict:
        """`speech_prompt` (log-mel of each text's recorded opening) and its mask, for `generate_speech`."""
        if not generating or self.tts_interleave_words:
            raise ValueError(
                "speech_prompt opens the speech generate_speech continues: it needs a plain TTS prompt "
                "(tts_interleave_words=False) and no training audio."
            )
        clips = self.feature_extractor.validated_clips(clips, sampling_rate)
        if len(clips) != num_texts:
            raise ValueError(f"Got {len(clips)} speech prompts for {num_texts} texts; give one opening per text.")
        extracted = self.feature_extractor.batch_features(clips, return_tensors="pt")
        return {"speech_prompt": extracted["input_features"], "speech_prompt_mask": extracted["input_features_mask"]}

    def text_units(self, text: str) -> list[int]:
        """The unit ids of `text` (a unified model's text path): `unit_spelling_mel_llm.text_to_units`."""
        if self.unit_vocabulary is None:
            raise ValueError(
                "This processor has no speech units: text_as_speech needs one built for a frontend='unified' model "
                "(speech_units=config.units, unit_vocabulary=config.unit_vocabulary)."
            )
        index = {unit: i for i, unit in enumerate(self.unit_vocabulary)}
        return [index[unit] for unit in text_to_units(text, self.speech_units, self.unit_vocabulary)]

    def _text_as_speech_features(self, items) -> dict[str, torch.Tensor]:
        """Each item, a text (one-hot units) or its (U, C) pseudo-posteriors, right-padded: the text path's input."""
        items = [items] if isinstance(items, str) or getattr(items, "ndim", 0) == 2 else list(items)
        if not items:
            raise ValueError("text_as_speech holds no items.")
        num_units = len(self.unit_vocabulary or [])
        rows = [
            one_hot_posteriors(self.text_units(item), num_units) if isinstance(item, str) else np.asarray(item)
            for item in items
        ]
        for i, row in enumerate(rows):
            if row.ndim != 2 or row.shape[1] != num_units or len(row) == 0:
                raise ValueError(f"text_as_speech[{i}] must be a text or a (units, {num_units}) array of posteriors.")
        longest = max(len(row) for row in rows)
        posteriors = torch.zeros(len(rows), longest, num_units)
        mask = torch.zeros(len(rows), longest, dtype=torch.bool)
        for i, row in enumerate(rows):
            posteriors[i, : len(row)], mask[i, : len(row)] = torch.as_tensor(row, dtype=torch.float32), True
        return {"unit_posteriors": posteriors, "unit_posteriors_mask": mask}

    def __call__(
        self,
        text: str | list[str] | None = None,
        audio: AudioInput | None = None,
        text_as_speech=None,
        **kwargs: Unpack[MelLLMProcessorKwargs],
    ) -> BatchFeature:
        """
        Build model inputs.

        Args:
            text (`str` or `list[str]`, *optional*): prompts holding one `audio_token` per clip; by default each clip
                gets the ASR prompt from `build_prompt()`. Clips given here, with no `audio`, are taken as `audio`
                (how scripts call speech processors: `processor(clips, sampling_rate=16000, ...)`).
            audio (array or list of arrays, *optional*): mono clips, checked by the feature extractor.
            text_as_speech (`str`, `list[str]` or (U, C) arrays, *optional*): instead of audio, for a
                `frontend="unified"` model: texts that enter where audio would (one placeholder per unit), or
                pseudo-posteriors over the units (training's simulation); returned as `unit_posteriors` (N, U, C)
                and `unit_posteriors_mask` (N, U).
            **kwargs: transformers' processing options, flat or in `text_kwargs` / `audio_kwargs` / `common_kwargs`
                (the same option twice raises): `sampling_rate` (must be 16000; the pipeline resamples),
                `text_target` (transcripts to learn: appended after the prompt with the EOS token and returned as
                `labels`, the prompt and padding -100), `padding` (`True`/`"longest"`, the default; `"max_length"`
                with `max_length`; `False`), `pad_to_multiple_of`, `padding_side` (default `"left"`: a batch can be
                generated from directly), `return_tensors` (default `"pt"`), `return_offsets_mapping`,
                `return_mm_token_type_ids`, `return_text_replacement_offsets`, `truncation` (with `max_length`; a cut
                through audio placeholders raises).

        Returns:
            `BatchFeature` with `input_ids`, `attention_mask`, and with audio `input_features` (B, T, M) and
            `input_features_mask` (B, T); with `text_target` also `labels`.
        """
        if audio is None and _looks_like_audio(text):  # processor(clips, sampling_rate=...), as for Whisper
            text, audio = None, text
        options = call_options(self, kwargs)
        clips = [] if audio is None else self.feature_extractor.validated_clips(audio, options.sampling_rate)
        features, replacements = {}, []
        if text_as_speech is not None:
            if clips:
                raise ValueError("Give audio or text_as_speech, not both.")
            features = self._text_as_speech_features(text_as_speech)
            replacements = [self.audio_token * int(count) for count in features["unit_posteriors_mask"].sum(-1)]
        prompts = self._prompts(text, len(clips) or len(replacements))
        if clips:
            features = dict(self.feature_extractor.batch_features(clips, return_tensors="pt"))
            replacements = [self.replace_audio_token(features, i) for i in range(len(clips))]
        expanded, replacement_offsets = self.get_text_with_replacements(list(prompts), audio_replacements=replacements)
        encoded = [self._encode(prompt, options) for prompt in expanded]
        prompt_ids = [row["input_ids"] for row in encoded]
        self._check_placeholders(prompt_ids, expanded)
        target_ids = self._targets(options.text_target, len(prompts))
        if target_ids is not None and options.return_offsets_mapping:
            raise ValueError("return_offsets_mapping describes prompts; it cannot be combined with text_target.")
        rows = {"input_ids": [p + (target_ids[i] if target_ids else []) for i, p in enumerate(prompt_ids)]}
        if target_ids is not None:
            rows["labels"] = [[IGNORE_INDEX] * len(p) + target_ids[i] for i, p in enumerate(prompt_ids)]
        if options.return_offsets_mapping:
            rows["offset_mapping"] = [row["offset_mapping"] for row in encoded]
        if options.return_mm_token_type_ids:
            rows["mm_token_type_ids"] = self.create_mm_token_type_ids(rows["input_ids"])
        pad_values = {"input_ids": self._pad_id, "labels": IGNORE_INDEX, "offset_mapping": (0, 0)}
        rows = truncate_rows(rows, options, self.audio_token_id)
        length = padded_length([len(row) for row in rows["input_ids"]], options)
        batch = pad_rows(rows, pad_values, options.padding_side, length)
        check_rectangular(batch, options.return_tensors)
        if options.return_text_replacement_offsets:
            batch["text_replacement_offsets"] = replacement_offsets
        return BatchFeature({**batch, **features}, tensor_type=options.return_tensors)

    def replace_audio_token(self, audio_inputs: dict, audio_idx: int, **kwargs) -> str:
        """What clip `audio_idx`'s placeholder becomes: one audio token per patch of its real frames."""
        frames = int(audio_inputs["input_features_mask"][audio_idx].sum())
        return self.audio_token * -(-frames // self.feature_extractor.frames_per_patch)

    @property
    def _pad_id(self) -> int:
        pad_id = self.tokenizer.pad_token_id
        return pad_id if pad_id is not None else self.tokenizer.eos_token_id

    @property
    def segment_separator_token_ids(self) -> list[int]:
        """The tokens of one space: what long-form `generate` puts between the transcripts of its windows."""
        return self.tokenizer.encode(" ", add_special_tokens=False)

    def batch_decode(self, sequences, **kwargs) -> list[str]:
        """
        Decode token rows. A row that still holds its prompt (what `model.generate` returns for a decoder-only model)
        is decoded from after its last `<|assistant|>` token, so `processor.batch_decode(model.generate(**inputs),
        skip_special_tokens=True)` gives the transcripts alone, as for an encoder-decoder model.
        """
        rows = sequences.tolist() if hasattr(sequences, "tolist") else [list(row) for row in sequences]
        return self.tokenizer.batch_decode([self._answer(row) for row in rows], **kwargs)

    def decode(self, token_ids, **kwargs) -> str:
        """`batch_decode` for one row."""
        row = token_ids.tolist() if hasattr(token_ids, "tolist") else list(token_ids)
        return self.tokenizer.decode(self._answer(row), **kwargs)

    def _answer(self, row: list[int]) -> list[int]:
        """The tokens after the row's last `<|assistant|>` (the whole row when it has none)."""
        marker = self.tokenizer.convert_tokens_to_ids(CHAT_TOKENS[1])
        if marker is None or marker == self.tokenizer.unk_token_id or marker not in row:
            return row
        return row[len(row) - row[::-1].index(marker) :]

    # ------------------------------------------------------------------ helpers
    def _prompts(self, text, num_clips: int) -> list[str]:
        if text is None:
            if num_clips == 0:
                raise ValueError("Give audio, text, or both.")
            return [self.build_prompt()] * num_clips
        prompts = [text] if isinstance(text, str) else list(text)
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("text must be a string or a list of strings.")
        num_placeholders = sum(p.count(self.audio_token) for p in prompts)
        if num_placeholders != num_clips:
            raise ValueError(
                f"The number of {self.audio_token} tokens in the prompts should be the same as the number of audio "
                f"clips: the text holds {num_placeholders} {self.audio_token} placeholders but {num_clips} audio "
                "clips were given; put one placeholder per clip."
            )
        return prompts

    def _encode(self, prompt: str, options=None) -> dict:
        """The prompt's token ids (and character offsets when asked); no second BOS when the prompt has one."""
        add_special = getattr(options, "add_special_tokens", None)
        if add_special is None:
            bos = self.tokenizer.bos_token
            add_special = not (bos is not None and prompt.startswith(bos))
        offsets = bool(getattr(options, "return_offsets_mapping", False))
        return self.tokenizer(prompt, add_special_tokens=add_special, return_offsets_mapping=offsets)

    def _check_placeholders(self, prompt_ids: list[list[int]], prompts: list[str]) -> None:
        for i, (ids, prompt) in enumerate(zip(prompt_ids, prompts, strict=True)):
            expected = prompt.count(self.audio_token)
            found = ids.count(self.audio_token_id)
            if found != expected:
                raise ValueError(
                    f"Prompt {i} tokenised to {found} audio tokens instead of {expected}: the tokenizer must treat "
                    f"{self.audio_token!r} as one special token (MelLLMProcessor.from_text_tokenizer adds it)."
                )

    def _targets(self, text_target, batch_size: int) -> list[list[int]] | None:
        if text_target is None:
            return None
        targets = [text_target] if isinstance(text_target, str) else list(text_target)
        if len(targets) != batch_size:
            raise ValueError(f"Got {len(targets)} text_target entries for {batch_size} prompts.")
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ValueError("The tokenizer has no eos_token, so a transcript cannot be terminated.")
        encoded = []
        for i, target in enumerate(targets):
            if not isinstance(target, str) or not target.strip():
                raise ValueError(f"text_target[{i}] is empty; every training clip needs a transcript.")
            encoded.append(self.tokenizer(target, add_special_tokens=False)["input_ids"] + [eos])
        return encoded


def _looks_like_audio(value) -> bool:
    """A clip or a list of clips (arrays, tensors, or one list of numbers), not prompt text."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return True
    if isinstance(value, (list, tuple)) and value:
        return isinstance(value[0], (np.ndarray, torch.Tensor, int, float)) and not isinstance(value[0], bool)
    return False


__all__ = ["TTS_INSTRUCTION", "MelLLMProcessor"]
