"""Speech generation for MelLLMForSpeechLM: ONE autoregressive loop over patches, and teacher-forced prediction.

A TTS prompt is laid out as text, then slots for speech. With words and speech interleaved
(`MelLLMProcessor(tts_interleave_words=True)`) each word has its own slot; a plain prompt is the one-slot case: the
whole text, then one clip. Each step either speaks (the mel head samples the next patch, which goes back in through
the audio path) or reads the next word's tokens once the stop head ends the current word.
Shapes: B batch, L tokens, P patches, F patch values (r frames × M bins), T frames, D LLM hidden.
"""

import itertools
import math
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.utils import ModelOutput

from .discrete_latent import LatentStep
from .mel_head import MelHeadStep, audio_batch_with_tts_rows, predictor_states, tts_target_mask
from .speech_options_mel_llm import SpeechGenerationOptions
from .speech_prompt_mel_llm import prompt_embeddings, spoken_openings


@dataclass
class MelLLMSpeechOutput(ModelOutput):
    """`generate_speech` result: log-mel frames (B, T, M) in the feature extractor's scale, zero past each
    clip's `mel_lengths` (B,), and the stop probability of every step (B, steps)."""

    mel_features: torch.FloatTensor | None = None
    mel_lengths: torch.LongTensor | None = None
    stop_probabilities: torch.FloatTensor | None = None


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding: each row counts from 0 at its first real token (padding gets 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def sequence_extent(past_key_values, num_new_tokens: int) -> tuple[int, bool]:
    """(positions the sequence may reach after this call, whether the cache is still empty) as Python numbers read
    without a host sync. A static cache keeps its length on the device, so its fixed size stands in (and it never
    counts as empty: `generate` passes position_ids), which keeps a compiled decode step free of graph breaks."""
    if past_key_values is None:
        return num_new_tokens, True
    if past_key_values.is_compileable and past_key_values.layers:
        return past_key_values.get_max_length(), False
    length = past_key_values.get_seq_length()
    return length + num_new_tokens, length == 0


def check_packed_rows(mel_targets: torch.Tensor | None) -> None:
    """Packed rows (position_ids without attention_mask, `training.data.pack_batch`) carry the ASR text loss only."""
    if mel_targets is not None:
        raise ValueError("Packed rows (position_ids without attention_mask) support the ASR text loss only.")


@dataclass
class _Row:
    """One clip being spoken: its words still to read, what it has said, and where it stands."""

    upcoming: list[list[int]]  # tokens of each word after the current one
    interleaved: bool
    pending: list[int] = field(default_factory=list)  # tokens of the next word still to read
    patches: list[torch.Tensor] = field(default_factory=list)  # (F,) each, CMVN space
    codes: list[torch.Tensor] = field(default_factory=list)  # (G,) code indices each (discrete latents)
    stops: list[torch.Tensor] = field(default_factory=list)
    in_word: int = 0
    opening: int = 0  # patches of a recorded opening (speech_prompt) at the start of `patches`
    done: bool = False

    @property
    def speaking(self) -> bool:
        return not self.done and not self.pending


class MelLLMSpeechGenerationMixin:
    """`generate_speech` and `teacher_forced_speech` for a Mel-LLM with a mel head (`config.tts_head`)."""

    @torch.no_grad()
    def generate_speech(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        max_new_frames: int = 1000,
        temperature: float = 1.0,
        stop_threshold: float = 0.5,
        min_new_frames: int = 0,
        seed: int | None = None,
        max_frames_per_word: int = 300,
        top_k: int | None = None,
        top_p: float | None = None,
        repetition_penalty: float | None = None,
        speech_prompt: torch.Tensor | None = None,
        speech_prompt_mask: torch.Tensor | None = None,
    ) -> MelLLMSpeechOutput:
        r"""
        Speak the text prompt(s) autoregressively: each step samples the next patch from the mel head, feeds it back
        through the audio input path with the KV cache, and ends a word (or the clip) when its stop probability
        passes `stop_threshold`. The post-net then refines each clip, and frames are mapped back to log-mel.

        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`): TTS prompts (`MelLLMProcessor.tts_inputs`), left-padded.
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 on real tokens.
            max_new_frames (`int`, defaults to 1000): at most this many 10 ms frames per clip.
            temperature (`float`, defaults to 1.0): scale of the latent noise; 0 takes the mean (deterministic).
            stop_threshold (`float`, defaults to 0.5): stop probability that ends a word or clip.
            min_new_frames (`int`, defaults to 0): the stop head cannot end a clip before this many frames.
            seed (`int`, *optional*): seeds one noise generator per row, so a clip is the same alone or in a batch.
            max_frames_per_word (`int`, defaults to 300): with words and speech interleaved (one placeholder per
                word), a word whose stop never comes ends after this many frames.
            top_k, top_p, repetition_penalty (*optional*): discrete latents only (`speech_latent="discrete"`): the
                prior's codes are drawn through transformers' logits processors, each group penalised for the codes
                it already chose (MELD's demo: top-k 60, top-p 0.9 and a repetition penalty).
            speech_prompt (`torch.Tensor` of shape `(B, T, M)`, *optional*): log-mel frames of each text's recorded
                opening (zero-shot continuation, speech_prompt_mel_llm.py); the output starts with its whole patches.
            speech_prompt_mask (`torch.Tensor` of shape `(B, T)`, *optional*): True on the opening's real frames.

        Returns:
            [`MelLLMSpeechOutput`] with `mel_features` (B, T, M), `mel_lengths` (B,) and `stop_probabilities`.

        Example:

        ```python
        >>> inputs = processor.tts_inputs(["turn the lights on"])
        >>> speech = model.generate_speech(**inputs, max_new_frames=400, seed=0)
        >>> speech.mel_features.shape[-1]
        80
        ```
        """
        options = SpeechGenerationOptions(
            max_new_frames,
            temperature,
            stop_threshold,
            min_new_frames,
            seed,
            max_frames_per_word,
            top_k,
            top_p,
            repetition_penalty,
        )
        if self.speech_latent is None and options.code_processors() is not None:
            raise ValueError("top_k, top_p and repetition_penalty sample discrete codes (speech_latent='discrete').")
        self._require_mel_head()
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        frames_per_patch, device = self.config.frames_per_patch, input_ids.device
        max_patches = math.ceil(options.max_new_frames / frames_per_patch)
        prompts, rows = self._speech_rows(input_ids, attention_mask)
        openings = None if speech_prompt is None else spoken_openings(self, speech_prompt, speech_prompt_mask)
        self.check_context(input_ids.shape[1] + max_patches + max((len(o.patches) for o in openings or []), default=0))
        if openings is not None:
            if rows[0].interleaved:
                raise ValueError(
                    "A speech_prompt continues a plain TTS prompt (text, then one clip), not interleaved words."
                )
            if len(openings) != len(rows):
                raise ValueError(
                    f"Got {len(openings)} speech prompts for {len(rows)} texts; give one opening per text."
                )
            for row, opening in zip(rows, openings, strict=True):  # the output starts with the opening
                row.patches, row.opening = list(opening.patches), len(opening.patches)
                row.stops = [opening.patches.new_zeros(())] * row.opening
                row.codes = [] if opening.codes is None else list(opening.codes)
        generators = [None] * len(rows)
        if options.seed is not None:
            generators = [torch.Generator(device=device).manual_seed(options.seed) for _ in rows]
        pad_id = self.generation_config.pad_token_id or 0
        embeds, mask = prompt_embeddings(self, prompts, openings, pad_id)
        position_ids = positions_from_mask(mask)
        cache = DynamicCache(config=self.config.text_config)
        hidden = self.final_hidden(embeds, mask, position_ids, cache)[:, -1]
        while True:
            speaking = [row.speaking for row in rows]
            step = self._next_patch(hidden, rows, speaking, generators, options)
            next_tokens = self._advance_rows(rows, speaking, step, options, max_patches, pad_id)
            if all(row.done for row in rows):
                break
            embeds = self._next_embeds(rows, speaking, next_tokens, step)
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
            position_ids = position_ids[:, -1:] + 1
            hidden = self.final_hidden(embeds.to(hidden.dtype), mask, position_ids, cache)[:, -1]
        return self._collect_speech(rows, options.max_new_frames)

    def _next_patch(self, hidden, states, speaking: list[bool], generators, options) -> MelHeadStep | LatentStep:
        """Each row's next patch from its (B, D) state, drawn with the row's own generator (so a clip is the same
        alone or in a batch): the mel head's latent noise, or codes from the discrete prior."""
        rows, temperature = range(len(speaking)), options.temperature
        if self.speech_latent is not None:
            processors = options.code_processors()
            steps = [
                self.speech_latent.sample(hidden[r : r + 1], temperature, generators[r], processors, states[r].codes)
                for r in rows
            ]
            return LatentStep(
                *(torch.cat([getattr(s, name) for s in steps]) for name in ("codes", "patch", "stop_logit"))
            )
        latent_size = self.mel_head.latent_proj.out_features // 2
        noise = torch.zeros(len(speaking), latent_size, device=hidden.device)
        for r in rows:
            if speaking[r]:
                noise[r] = torch.randn(latent_size, generator=generators[r], device=hidden.device)
        return self.mel_head.step(hidden, noise.to(hidden.dtype), temperature)

    def _speech_rows(self, input_ids, attention_mask) -> tuple[list[list[int]], list[_Row]]:
        """Per row (padding dropped): the tokens read before speaking starts, and the row's state. A prompt without
        placeholders is read whole and then speaks one clip; with them, speech starts at the first one."""
        prompts, rows = [], []
        for ids, real in zip(input_ids.tolist(), attention_mask.bool().tolist(), strict=True):
            tokens = [token for token, keep in zip(ids, real, strict=True) if keep]
            slots = [i for i, token in enumerate(tokens) if token == self.config.audio_token_id]
            prompts.append(tokens[: slots[0]] if slots else tokens)
            upcoming = [tokens[a + 1 : b] for a, b in itertools.pairwise(slots)]
            rows.append(_Row(upcoming, interleaved=bool(slots)))
        if len({row.interleaved for row in rows}) > 1:
            raise ValueError(
                "Some TTS prompts hold audio placeholders (one per word: words and speech interleaved) and some "
                "do not; build the batch with one MelLLMProcessor.tts_inputs call."
            )
        return prompts, rows

    def _advance_rows(
        self, rows, speaking, step: MelHeadStep | LatentStep, options, max_patches: int, pad_id: int
    ) -> list[int]:
        """Record the patch each speaking row just said and decide whether its word (or clip) ends; return the token
        each reading row reads next (`pad_id` for the others)."""
        frames_per_patch = self.config.frames_per_patch
        min_patches = math.ceil(options.min_new_frames / frames_per_patch)
        word_limit = max(1, math.ceil(options.max_frames_per_word / frames_per_patch))
        stop = torch.sigmoid(step.stop_logit.float())
        next_tokens = [pad_id] * len(rows)
        for r, row in enumerate(rows):
            if speaking[r]:
                row.patches.append(step.patch[r])
                if isinstance(step, LatentStep):
                    row.codes.append(step.codes[r].argmax(-1))
                row.stops.append(stop[r])
                row.in_word += 1
                last_word, spoken = not row.upcoming, len(row.patches) - row.opening
                word_ends = bool(stop[r] > options.stop_threshold) and (not last_word or spoken >= min_patches)
                if word_ends or (row.interleaved and row.in_word >= word_limit):
                    if last_word:
                        row.done = True
                    else:
                        row.pending, row.in_word = row.upcoming.pop(0), 0
                if spoken >= max_patches:
                    row.done = True
            elif not row.done:
                next_tokens[r] = row.pending.pop(0)
        return next_tokens

    def _next_embeds(self, rows, speaking, next_tokens: list[int], step: MelHeadStep | LatentStep) -> torch.Tensor:
        """(B, 1, D) LLM input of the next step: the newest patch (or its codes) for speaking rows, the next token
        for the others."""
        patch = step.patch
        device, context = patch.device, self.audio_frontend.context_patches
        text_embeds = self.get_input_embeddings()(torch.tensor(next_tokens, device=device))[:, None]
        if self.speech_latent is not None:  # the sampled codes themselves, as training fed the posterior's
            patch_embeds = self.speech_latent.embed(step.codes)[:, None].to(text_embeds.dtype)
            return torch.where(torch.tensor(speaking, device=device)[:, None, None], patch_embeds, text_embeds)
        recent = torch.zeros(len(rows), context, patch.shape[-1], dtype=patch.dtype, device=device)
        for r, row in enumerate(rows):
            history = row.patches[-context:]
            if history:
                recent[r, context - len(history) :] = torch.stack(history)
        frames = recent.reshape(len(rows), -1, self.config.num_mel_bins)
        patch_embeds = self._embed_generated(self.audio_frontend.norm.denormalize(frames)).to(text_embeds.dtype)
        return torch.where(torch.tensor(speaking, device=device)[:, None, None], patch_embeds, text_embeds)

    def _collect_speech(self, rows: list[_Row], max_new_frames: int) -> MelLLMSpeechOutput:
        """Each row's patches (CMVN space) → post-net-refined log-mel, zero past each clip's length."""
        first = rows[0].patches[0]
        count = max(len(row.patches) for row in rows)
        patches = torch.zeros(len(rows), count, first.shape[-1], dtype=first.dtype, device=first.device)
        stop_probabilities = torch.zeros(len(rows), count, device=first.device)
        for r, row in enumerate(rows):
            patches[r, : len(row.patches)] = torch.stack(row.patches)
            stop_probabilities[r, : len(row.stops)] = torch.stack(row.stops)
        r = self.config.frames_per_patch  # the opening's frames, then at most max_new_frames
        lengths = torch.tensor([min(len(row.patches) * r, row.opening * r + max_new_frames) for row in rows])
        lengths = lengths.to(first.device)
        frames = patches.reshape(len(rows), -1, self.config.num_mel_bins)  # (B, S·r, M)
        mask = torch.arange(frames.shape[1], device=frames.device)[None, :] < lengths[:, None]
        frames = self._refine(frames, mask)
        mel = self.audio_frontend.norm.denormalize(frames).masked_fill(~mask[..., None], 0.0)[:, : int(lengths.max())]
        return MelLLMSpeechOutput(mel_features=mel, mel_lengths=lengths, stop_probabilities=stop_probabilities)

    @torch.no_grad()
    def teacher_forced_speech(
        self,
        input_ids: torch.LongTensor,
        mel_targets: torch.Tensor,
        mel_target_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> MelLLMSpeechOutput:
        r"""
        Every patch of the recorded speech predicted (at the latent mean) from the text and the recorded patches
        before it, then post-net refined: what the model would say if it never drifted. A diagnostic, not
        synthesis: intelligible here but not from `generate_speech` means the model reads the text but loses its
        way on its own output (`benchmarks/tts_eval.py` reports both).

        Args:
            input_ids, mel_targets, mel_target_mask, attention_mask: TTS training inputs,
                `MelLLMProcessor.tts_inputs(texts, audio=clips, ...)`; other keys are ignored.

        Returns:
            [`MelLLMSpeechOutput`] with `mel_features` (B, T, M) shaped like `mel_targets`, `mel_lengths` (B,) the
            recorded lengths, and `stop_probabilities` (B, P) of every patch.
        """
        self._require_mel_head()
        mel_target_mask = tts_target_mask(self.config.tts_head, input_ids, mel_targets, mel_target_mask)
        was_training = self.training
        self.eval()  # no dropout in the backbone: the recorded patches, as they are
        try:
            step, _, frame_mask = self.predict_patches(input_ids, attention_mask, mel_targets, mel_target_mask, 0.0)
        finally:
            self.train(was_training)
        frames = self._refine(step.patch.reshape(len(step.patch), -1, self.config.num_mel_bins), frame_mask)
        mel = self.audio_frontend.norm.denormalize(frames)[:, : mel_targets.shape[1]]
        return MelLLMSpeechOutput(
            mel_features=mel.masked_fill(~mel_target_mask[..., None], 0.0),
            mel_lengths=mel_target_mask.sum(-1),
            stop_probabilities=torch.sigmoid(step.stop_logit.float()),
        )

    def predict_patches(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        mel_inputs: torch.Tensor,
        mel_target_mask: torch.Tensor,
        temperature: float,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
    ) -> tuple[MelHeadStep | LatentStep, torch.Tensor, torch.Tensor]:
        """
        One LLM pass with `mel_inputs` log-mel frames as the TTS rows' audio input: the mel head's step for every
        patch (each predicted from the text and the fed-back patches before it), with the (B, P) patch mask and the
        (B, P·r) frame mask. Scheduled sampling (training/scheduled_sampling.py) feeds these predictions back.
        """
        features, features_mask = audio_batch_with_tts_rows(
            input_features, input_features_mask, mel_inputs, mel_target_mask
        )
        embeds = self.merge_audio_embeddings(
            input_ids, self.get_input_embeddings()(input_ids), features, features_mask
        )
        self.check_context(embeds.shape[1])
        position_ids = positions_from_mask(attention_mask) if attention_mask is not None else None
        hidden = self.final_hidden(embeds, attention_mask, position_ids)
        placeholders = self.tts_placeholders(input_ids, mel_target_mask)
        hidden_patches, patch_mask, frame_mask = predictor_states(
            hidden, placeholders, mel_target_mask, self.config.frames_per_patch
        )
        if self.speech_latent is not None:
            return self.speech_latent.sample(hidden_patches, temperature), patch_mask, frame_mask
        return self.mel_head.step(hidden_patches, temperature=temperature), patch_mask, frame_mask

    def _refine(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The mel head's post-net over (B, T, M) predicted frames; discrete latents decode without one."""
        return frames if self.mel_head is None else self.mel_head.refine_spectrogram(frames, mask)

    def _embed_generated(self, frames: torch.Tensor) -> torch.Tensor:
        """LLM input for the newest generated patch: log-mel (B, k·r, M) holding the last k = context patches."""
        return self.get_audio_features(frames).last_hidden_state[:, -1:]  # (B, 1, D)

    def final_hidden(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None, position_ids, cache=None
    ) -> torch.Tensor:
        """One pass of the backbone's decoder, cached when `cache` is given; its final hidden states (B, L, D), which
        the mel head reads. The LM head is skipped: speaking reads no logits (half the step of a 50 k vocabulary)."""
        outputs = self.get_decoder()(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=cache is not None,
        )
        return outputs.last_hidden_state

    def _require_mel_head(self) -> None:
        if not self.config.tts_head:
            raise ValueError("This model has no TTS head (config.tts_head=False), so it cannot speak.")


__all__ = ["MelLLMSpeechGenerationMixin", "MelLLMSpeechOutput", "SpeechGenerationOptions", "positions_from_mask"]
