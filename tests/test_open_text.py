"""The open-vocabulary text source: its size and vocabulary, its cleaning rules, and held-out sets that measure what
they claim (unseen sentences of seen words; sentences with words training never has)."""

import json

import pytest
import torch

from tests.conftest import overfit, transcribe
from training.corpus import synthetic_corpus
from training.corpus.open_text import (
    clean_sentences,
    is_clean,
    load_open_sentences,
    oov_rate,
    open_text_splits,
    text_statistics,
    transcript,
)
from training.corpus.synthetic_corpus import plan_corpus
from training.corpus.synthetic_speech import EspeakSynthesizer, to_training_clip
from training.tiny import build_tiny_model, build_tiny_processor


@pytest.fixture(scope="module")
def splits():
    return open_text_splits(num_train=16000, num_seen=600, num_unseen_words=300, seed=0)


def test_the_text_source_has_the_promised_size_and_vocabulary():
    sentences = load_open_sentences()
    stats = text_statistics(sentences)
    assert stats["sentences"] >= 20_000
    assert stats["distinct_words"] >= 5_000
    assert len({transcript(s) for s in sentences}) == len(sentences)  # distinct as spoken, not only as written
    assert all(is_clean(s) for s in sentences)
    lengths = [len(transcript(s).split()) for s in sentences]
    assert min(lengths) >= 3
    assert max(lengths) <= 20


def test_cleaning_keeps_plain_sentences_and_drops_the_rest():
    raw = (
        'Here are five sentences:\n1. "I love my garden."\nFriend 1: Did you see the game last night?\n'
        "A: It was well-known, and great!\nI paid 5 dollars.\nThis sentence is about me.\nShe ran to the\n"
        "i love my garden.\nOk."
    )
    assert clean_sentences([raw]) == [
        "I love my garden.",
        "Did you see the game last night?",
        "It was well-known, and great!",
    ]
    assert transcript("It's well-known, isn't it?") == "it's well known isn't it"


def test_held_out_sets_measure_what_they_claim(splits):
    train_words = {w for t in splits["train"] for w in t.split()}
    assert len(splits["seen_words"]) == 600
    assert len(splits["unseen_words"]) == 300
    assert all(train_words.issuperset(t.split()) for t in splits["seen_words"])  # set (a): known words
    assert all(not train_words.issuperset(t.split()) for t in splits["unseen_words"])  # set (b): a new word each
    held_out = splits["seen_words"] + splits["unseen_words"]
    assert not set(held_out) & set(splits["train"])
    assert len(set(held_out)) == len(held_out)
    assert oov_rate(splits["seen_words"], splits["train"]) == 0.0
    assert oov_rate(splits["unseen_words"], splits["train"]) > 0.05
    assert open_text_splits(16000, 600, 300, seed=0) == splits  # seeded
    assert open_text_splits(16000, 600, 300, seed=1)["unseen_words"] != splits["unseen_words"]


def test_the_open_corpus_plan_has_four_splits_from_the_right_voices(caplog):
    rows = plan_corpus(200, 20, seed=0, text_source="open")
    assert "too few for full cover" in caplog.text  # 200 training sentences cannot hold every word of set (a)
    by_split = {
        s: [r for r in rows if r["split"] == s] for s in ("train", "eval", "eval_speakers", "eval_unseen_words")
    }
    assert {s: len(r) for s, r in by_split.items()} == {
        "train": 200,
        "eval": 20,
        "eval_speakers": 20,
        "eval_unseen_words": 20,
    }
    assert {r["voice"] for r in by_split["eval_unseen_words"]} <= set(synthetic_corpus.HELD_OUT_SPEAKERS)
    assert {r["voice"] for r in by_split["eval"]} <= set(synthetic_corpus.HELD_OUT_VOICES)
    assert {r["kind"] for r in by_split["eval_unseen_words"]} == {"open_unseen_words"}
    single = plan_corpus(200, 20, seed=0, voice="en-us", text_source="open")
    assert {r["split"] for r in single} == {"train", "eval", "eval_unseen_words"}
    assert {r["voice"] for r in single} == {"en-us"}
    with pytest.raises(ValueError, match="text_source='poems'"):
        plan_corpus(10, 2, seed=0, text_source="poems")


def test_open_corpus_builds_its_unseen_words_manifest_in_its_own_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic_corpus, "SHARD_SIZE", 16)
    monkeypatch.setenv("MEL_LLM_CACHE", str(tmp_path))
    train, evaluation = synthetic_corpus.build_corpus(num_train=12, num_eval=4, seed=0, text_source="open")
    assert "-open-" in train.parent.name
    unseen = synthetic_corpus.unseen_words_manifest(evaluation)
    rows = [json.loads(line) for line in unseen.read_text().splitlines()]
    assert len(rows) == 4
    assert all(len(r["word_starts"]) == len(r["transcript"].split()) for r in rows)
    info = json.loads((train.parent / "corpus_info.json").read_text())
    assert info["text_source"]["sha1"].startswith(train.parent.name.rsplit("-", 1)[1])


def test_a_tiny_model_round_trips_words_its_tokenizer_never_saw(splits):
    """The from-scratch tokenizer trained on the training text spells held-out words, and a tiny model learns to
    write them from speech: nothing in the path is closed to new words."""
    train_words = {w for t in splits["train"] for w in t.split()}
    texts = sorted(splits["unseen_words"][:50], key=len)[:2]  # short, so the overfit takes seconds
    new_words = [w for t in texts for w in t.split() if w not in train_words]
    processor = build_tiny_processor(splits["train"][:4000])
    tokenizer = processor.tokenizer
    for word in new_words:
        ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == " " + word
    synthesizer = EspeakSynthesizer()
    clips = [to_training_clip(synthesizer.synthesize(t), synthesizer.sampling_rate) for t in texts]
    torch.manual_seed(0)
    model = build_tiny_model(processor)
    assert overfit(model, processor, clips, texts, max_steps=400) < 0.05
    assert transcribe(model, processor, clips, max_new_tokens=48) == texts


def test_benchmarks_read_the_main_jobs_corpus():
    """`cached_corpus_manifests(text_source="open")` (voice_generalization, tts_eval) builds the very corpus the main
    job trains on, so they share its cache and score its held-out clips."""
    import yaml

    from tests.conftest import REPO_ROOT
    from training.corpus.defaults import DEFAULT_NUM_EVAL, OPEN_NUM_TRAIN

    recipe = yaml.safe_load((REPO_ROOT / "training" / "configs" / "tiny_cpu.yaml").read_text())
    assert recipe["synthetic_text"] == "open"
    assert (recipe["synthetic_num_train"], recipe["synthetic_num_eval"]) == (OPEN_NUM_TRAIN, DEFAULT_NUM_EVAL)
    assert recipe["synthetic_pseudo_accent_share"] == 0.0
