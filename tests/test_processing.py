"""MelLLMProcessor: placeholder expansion, chat template with audio items, labels, padding, save/load."""

import itertools

import numpy as np
import pytest
import torch

from processing import MelLLMProcessor
from processing.text_normalization_mel_llm import normalize_tts_text
from training.tiny import build_tokenizer


def _clip(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(16_000 * seconds))).astype(np.float32)


def test_each_placeholder_expands_to_the_clip_token_count(processor):
    clips = [_clip(1.0), _clip(0.37, 1)]
    batch = processor(audio=clips, sampling_rate=16_000)
    counts = (batch["input_ids"] == processor.audio_token_id).sum(-1).tolist()
    assert counts == [processor.feature_extractor.num_audio_tokens(len(c)) for c in clips] == [13, 5]


def test_custom_prompt_with_two_clips_in_one_sample(processor):
    text = f"<|user|>Compare {processor.audio_token} with {processor.audio_token}<|end|><|assistant|>"
    batch = processor(text=text, audio=[_clip(0.5), _clip(1.0, 1)], sampling_rate=16_000)
    assert batch["input_ids"].shape[0] == 1
    assert int((batch["input_ids"] == processor.audio_token_id).sum()) == 6 + 13  # 48 and 98 frames
    with pytest.raises(ValueError, match="holds 2 <\\|audio\\|> placeholders but 1 audio clips"):
        processor(text=text, audio=[_clip(0.5)], sampling_rate=16_000)


def test_apply_chat_template_with_audio_items_matches_direct_call(processor):
    clip = _clip(1.0)
    conversation = [
        {
            "role": "user",
            "content": [{"type": "audio", "audio": clip}, {"type": "text", "text": processor.instruction}],
        }
    ]
    rendered = processor.apply_chat_template(conversation, add_generation_prompt=True)
    assert rendered == "<|user|><|audio|>Transcribe the audio clip into text.<|end|><|assistant|>"
    assert rendered == processor.build_prompt()
    inputs = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True, return_dict=True)
    direct = processor(audio=[clip], sampling_rate=16_000)
    for key in direct:
        assert torch.equal(inputs[key], direct[key]), key


def test_left_and_right_padding(processor):
    clips = [_clip(1.0), _clip(0.3, 1)]
    left = processor(audio=clips, sampling_rate=16_000)
    right = processor(audio=clips, sampling_rate=16_000, padding_side="right")
    assert left["attention_mask"][1, 0] == 0
    assert left["attention_mask"][1, -1] == 1
    assert right["attention_mask"][1, 0] == 1
    assert right["attention_mask"][1, -1] == 0
    real = left["attention_mask"][1].bool()
    assert torch.equal(left["input_ids"][1][real], right["input_ids"][1][right["attention_mask"][1].bool()])
    with pytest.raises(ValueError, match="padding_side"):
        processor(audio=clips, sampling_rate=16_000, padding_side="middle")


def test_text_target_errors(processor):
    with pytest.raises(ValueError, match=r"text_target\[1\] is empty"):
        processor(audio=[_clip(0.5), _clip(0.5)], sampling_rate=16_000, text_target=["one", "  "])
    with pytest.raises(ValueError, match="Got 1 text_target entries for 2 prompts"):
        processor(audio=[_clip(0.5), _clip(0.5)], sampling_rate=16_000, text_target=["one"])


def test_tokenizer_without_the_audio_token_is_refused():
    from processing import MelLLMFeatureExtractor

    with pytest.raises(ValueError, match="does not know the audio token"):
        MelLLMProcessor(MelLLMFeatureExtractor(), build_tokenizer())


def test_from_text_tokenizer_adds_special_tokens_once():
    tokenizer = build_tokenizer()
    before = len(tokenizer)
    processor = MelLLMProcessor.from_text_tokenizer(tokenizer)
    assert len(processor.tokenizer) == before + 4  # <|audio|>, <|user|>, <|assistant|>, <|end|>
    again = MelLLMProcessor.from_text_tokenizer(processor.tokenizer)
    assert len(again.tokenizer) == before + 4
    assert processor.tokenizer.convert_ids_to_tokens(processor.audio_token_id) == "<|audio|>"


def test_save_and_load_round_trip(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    loaded = MelLLMProcessor.from_pretrained(tmp_path)
    assert loaded.audio_token_id == processor.audio_token_id
    assert loaded.instruction == processor.instruction
    assert loaded.chat_template == processor.chat_template
    clips = [_clip(0.8), _clip(0.4, 1)]
    a = processor(audio=clips, sampling_rate=16_000, text_target=["one two", "three"])
    b = loaded(audio=clips, sampling_rate=16_000, text_target=["one two", "three"])
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_batch_decode_strips_special_tokens(processor):
    ids = processor.tokenizer("one two", add_special_tokens=False)["input_ids"] + [processor.tokenizer.eos_token_id]
    assert processor.batch_decode([ids], skip_special_tokens=True) == ["one two"]


def test_processors_saved_with_character_spelling_are_refused(processor):
    """`tts_text_units="characters"` was removed (it did worse); a processor saved with it says so."""
    with pytest.raises(ValueError, match="removed after commit 49b21fd"):
        MelLLMProcessor(processor.feature_extractor, processor.tokenizer, tts_text_units="characters")


def test_interleaved_tts_rows_put_each_word_before_its_own_patches(processor, tmp_path):
    interleaved = MelLLMProcessor(processor.feature_extractor, processor.tokenizer, tts_interleave_words=True)
    text, clip = "one two three", _clip(0.9)  # 88 frames: 11 patches of 8
    starts = [0.0, 0.3, 0.58]  # at 80 ms per patch: words start at patches 0, 4 (3.75) and 7 (7.25)
    batch = interleaved.tts_inputs([text], audio=[clip], sampling_rate=16_000, word_starts=[starts])
    pieces = processor.tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    runs = itertools.groupby(pieces[pieces.index("<|assistant|>") + 1 :], key=lambda piece: piece == "<|audio|>")
    layout = [
        len(list(run)) if audio else processor.tokenizer.convert_tokens_to_string(list(run)) for audio, run in runs
    ]
    assert layout == [" one", 4, " two", 3, " three", 4]
    plain = processor.tts_inputs([text], audio=[clip], sampling_rate=16_000)
    assert torch.equal(batch["mel_targets"], plain["mel_targets"])
    # Synthesis: one slot per word, which generate_speech fills until the stop head ends the word.
    slots = interleaved.tts_inputs([text])["input_ids"][0]
    assert int((slots == processor.audio_token_id).sum()) == 3
    # Every word keeps at least one patch, even when two start within one patch.
    assert interleaved.patches_per_word([0.0, 0.01, 0.02], 11, text) == [1, 1, 9]
    with pytest.raises(ValueError, match="training rows need word_starts"):
        interleaved.tts_inputs([text], audio=[clip], sampling_rate=16_000)
    with pytest.raises(ValueError, match="has 2 times for the 3 words"):
        interleaved.tts_inputs([text], audio=[clip], sampling_rate=16_000, word_starts=[[0.0, 0.3]])
    with pytest.raises(ValueError, match="too short"):
        interleaved.tts_inputs([text], audio=[_clip(0.1)], sampling_rate=16_000, word_starts=[starts])
    interleaved.save_pretrained(tmp_path)
    assert MelLLMProcessor.from_pretrained(tmp_path).tts_interleave_words is True


def test_phoneme_units_give_every_word_espeaks_pronunciation(processor, tmp_path):
    """With `tts_text_units="phonemes"` a TTS model reads espeak-ng's pronunciation of each word, so a word it never
    saw (here made up) is still spoken as written; the choice is saved with the processor."""
    from processing.espeak_mel_llm import phonemize_words

    assert phonemize_words("hello world") == ["h@l'oU", "w'3:ld"]
    assert len(phonemize_words("the zorblaxian snurfled")) == 3
    phonemes = MelLLMProcessor(
        processor.feature_extractor, processor.tokenizer, tts_interleave_words=True, tts_text_units="phonemes"
    )
    text, clip = "Hello, Zorblax!", _clip(0.9)
    assert phonemes.tts_units(normalize_tts_text(text)) == ["h@l'oU", phonemize_words("zorblax")[0]]
    batch = phonemes.tts_inputs([text], audio=[clip], sampling_rate=16_000, word_starts=[[0.0, 0.4]])
    pieces = processor.tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    runs = itertools.groupby(pieces[pieces.index("<|assistant|>") + 1 :], key=lambda piece: piece == "<|audio|>")
    layout = [
        len(list(run)) if audio else processor.tokenizer.convert_tokens_to_string(list(run)) for audio, run in runs
    ]
    assert layout == [" h@l'oU", 5, " " + phonemize_words("zorblax")[0], 6]
    phonemes.save_pretrained(tmp_path)
    assert MelLLMProcessor.from_pretrained(tmp_path).tts_text_units == "phonemes"
    with pytest.raises(ValueError, match="choose one of"):
        MelLLMProcessor(processor.feature_extractor, processor.tokenizer, tts_text_units="letters")
