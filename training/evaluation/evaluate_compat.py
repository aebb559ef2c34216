"""Let `evaluate`'s evaluators run under transformers 5, on request.

evaluate 0.4.6 (its latest release) decides whether `model_or_pipeline` is a model with
`isinstance(x, transformers.TFPreTrainedModel)`, a class transformers 5 removed, so every evaluator call with a
pipeline object raises AttributeError, for any model. `allow_evaluate_evaluators()` defines an empty stand-in class:
nothing is an instance of it, so that check is False, as it always is for a PyTorch model. It is opt-in because it
adds a name to transformers' namespace.
"""

import importlib
import sys


def allow_evaluate_evaluators() -> None:
    """Give transformers the `TFPreTrainedModel` name evaluate's evaluators look up (an empty class); idempotent."""
    transformers = sys.modules.get("transformers") or importlib.import_module("transformers")
    if "TFPreTrainedModel" not in vars(transformers):
        transformers.TFPreTrainedModel = type("TFPreTrainedModel", (), {"__doc__": "Stand-in for evaluate 0.4.6."})


__all__ = ["allow_evaluate_evaluators"]
