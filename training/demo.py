"""The main job, CPU-sized: train a small Mel-LLM from scratch on FSDD spoken digits, transcribe held-out takes, print WER.

    python -m training.demo [--max-steps 600] [--output-dir runs/demo]

Trains with `transformers.Trainer` on the FSDD train takes (5-49) of all five speakers, evaluates on the test takes
(0-4), saves a `save_pretrained` folder and transcribes one file through `pipeline("automatic-speech-recognition")`.
"""

import argparse
import json
import time
from pathlib import Path

import jiwer
import torch
from transformers import Trainer, TrainingArguments, pipeline, set_seed

from training.data import MelLLMDataCollator, SpeechTextDataset, read_manifest
from training.tiny import DIGIT_WORDS, build_tiny_model, build_tiny_processor


FSDD_MANIFEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd" / "manifest.jsonl"


def transcribe(model, processor, dataset: SpeechTextDataset, batch_size: int = 32) -> list[str]:
    """Greedy transcripts of every example, in order."""
    hypotheses = []
    model.eval()
    for start in range(0, len(dataset), batch_size):
        clips = [dataset[i]["audio"] for i in range(start, min(start + batch_size, len(dataset)))]
        inputs = processor(audio=clips, sampling_rate=16_000)
        with torch.inference_mode():
            tokens = model.generate(**inputs, do_sample=False, max_new_tokens=16)
        new_tokens = tokens[:, inputs["input_ids"].shape[1] :]
        hypotheses += [t.strip() for t in processor.batch_decode(new_tokens, skip_special_tokens=True)]
    return hypotheses


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default=str(FSDD_MANIFEST))
    parser.add_argument("--output-dir", default="runs/demo")
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.time()
    set_seed(args.seed)

    utterances = read_manifest(args.manifest)
    train = SpeechTextDataset([u for u in utterances if u.metadata["fsdd_split"] == "train"])
    test = SpeechTextDataset([u for u in utterances if u.metadata["fsdd_split"] == "test"])
    processor = build_tiny_processor(corpus=[" ".join(DIGIT_WORDS)])
    model = build_tiny_model(processor, family="llama", frontend="stack", hidden_size=128, num_layers=4)
    stats = processor.feature_extractor([train[i]["audio"] for i in range(0, len(train), 10)], sampling_rate=16_000)
    model.fit_feature_normalization(stats["input_features"], stats["input_features_mask"])
    print(f"train {len(train)} clips, test {len(test)} clips, model {model.num_parameters():,} parameters")

    training_args = TrainingArguments(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=args.max_steps // 20,
        lr_scheduler_type="cosine",
        weight_decay=0.01,
        logging_steps=50,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        use_cpu=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model, args=training_args, train_dataset=train, data_collator=MelLLMDataCollator(processor)
    )
    trainer.train()

    hypotheses = transcribe(model, processor, test)
    references = [u.text for u in test.utterances]
    wer = jiwer.wer(references, hypotheses)
    model.save_pretrained(args.output_dir)
    processor.save_pretrained(args.output_dir)

    asr = pipeline("automatic-speech-recognition", model=args.output_dir, trust_remote_code=True)
    example = test.utterances[0]
    piped = asr(str(example.audio_path))["text"]
    report = {
        "wer": wer,
        "test_clips": len(test),
        "train_clips": len(train),
        "max_steps": args.max_steps,
        "wall_s": round(time.time() - started, 1),
        "pipeline_example": {"file": example.audio_path.name, "reference": example.text, "hypothesis": piped},
    }
    Path(args.output_dir, "demo_report.json").write_text(json.dumps(report, indent=2))
    print(f"pipeline on {example.audio_path.name}: {piped!r} (reference {example.text!r})")
    print(f"WER on {len(test)} held-out FSDD takes: {100 * wer:.2f}%  (wall {report['wall_s']} s)")
    return report


if __name__ == "__main__":
    main()
