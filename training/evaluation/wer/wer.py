"""Word error rate as an `evaluate` module that needs no download: `evaluate.load("wer")` fetches its script from the
Hub, so offline callers (this repo's CI, a leaderboard run on an air-gapped box) load this file instead:

    import evaluate
    from training.evaluation.wer_metric import load_wer
    wer = load_wer()                     # = evaluate.load(path of this file)
    wer.compute(predictions=["a b"], references=["a c"])  # 0.5

The same numbers as the Hub's `wer` (jiwer, corpus level: total errors over total reference words, as a fraction).
"""

import datasets
import evaluate
import jiwer


class WER(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Word error rate: (substitutions + deletions + insertions) / reference words, corpus level.",
            citation="",
            inputs_description="predictions: list of str; references: list of str; concatenate_texts: bool",
            features=datasets.Features(
                {"predictions": datasets.Value("string", id="sequence"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://en.wikipedia.org/wiki/Word_error_rate"],
        )

    def _compute(self, predictions=None, references=None, concatenate_texts: bool = False) -> float:
        if concatenate_texts:
            return jiwer.wer(" ".join(references), " ".join(predictions))
        output = jiwer.process_words(references, predictions)
        errors = output.substitutions + output.deletions + output.insertions
        return errors / (output.substitutions + output.deletions + output.hits)
