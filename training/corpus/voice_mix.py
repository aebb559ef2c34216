"""Who speaks the synthetic corpus: espeak-ng, and optionally the neural voices Piper and Kokoro (issue 21).

`--synthetic_voices espeak,piper,kokoro` (equal shares) or `espeak:0.75,piper:0.1,kokoro:0.15` gives each training
utterance an engine; the texts stay those of the espeak-only corpus, so two corpora differ only in who speaks.
Kokoro speakers are blends of its five voices (`draw_kokoro_speakers`), Piper speakers prosody settings of its one
voice (`draw_prosodies`); each neural engine adds a held-out split (`eval_kokoro`, `eval_piper`) that speaks the
held-out-speakers sentences with speakers training never has. Neural shards are synthesised like espeak-ng's, in
fresh seeded processes, so a corpus is the same for the same seed whatever the worker count.
"""

import random
from pathlib import Path

from training.corpus.kokoro_speech import KokoroSpeaker, KokoroSynthesizer, draw_kokoro_speakers
from training.corpus.piper_speech import PiperProsody, PiperSynthesizer, draw_prosodies
from training.corpus.synthetic_speech import to_training_clip_with_offset, write_wav


ENGINES = ("espeak", "piper", "kokoro")
NEURAL_ENGINES = ("piper", "kokoro")
TRAIN_SPEAKERS = {"piper": 60, "kokoro": 300}
HELD_OUT_SPEAKERS = {"piper": 15, "kokoro": 25}
NEURAL_SHARD_SIZE = 50  # utterances per fresh process: a neural voice is ~100x slower than espeak-ng
# Measured here, 1 thread per process, 2 processes (tiny_cpu_voices.yaml's corpus: 62 min in all; Piper's from
# tts_piper_cpu.yaml's, 18600 utterances in 49 min)
UTTERANCES_PER_SECOND_PER_PROCESS = {"espeak": 80.0, "piper": 3.2, "kokoro": 0.45}


def parse_voice_mix(spec: str | None) -> dict[str, float]:
    """`"espeak"`, `"espeak,piper,kokoro"` (equal shares) or `"espeak:0.75,kokoro:0.25"` → {engine: share}, summing to 1."""
    mix: dict[str, float] = {}
    for part in (spec or "espeak").split(","):
        name, _, share = part.strip().partition(":")
        if name not in ENGINES:
            raise ValueError(f"synthetic_voices: unknown voice engine {name!r}; choose from {ENGINES}.")
        if name in mix:
            raise ValueError(f"synthetic_voices names {name!r} twice.")
        try:
            mix[name] = float(share) if share else 1.0
        except ValueError:
            raise ValueError(f"synthetic_voices: share {share!r} of {name!r} is not a number.") from None
        if not mix[name] > 0:
            raise ValueError(f"synthetic_voices: the share of {name!r} must be positive, got {share}.")
    total = sum(mix.values())
    return {name: share / total for name, share in mix.items()}


def held_out_splits(mix: dict[str, float]) -> list[str]:
    """The extra held-out splits a mix adds: one per neural engine it has."""
    return [f"eval_{engine}" for engine in NEURAL_ENGINES if engine in mix]


def _speakers(engine: str, seed: int) -> tuple[list, list]:
    """`(training, held-out)` speakers of a neural engine, fixed by the seed."""
    if engine == "kokoro":
        return draw_kokoro_speakers(TRAIN_SPEAKERS["kokoro"], HELD_OUT_SPEAKERS["kokoro"], seed)
    prosodies = draw_prosodies(TRAIN_SPEAKERS["piper"] + HELD_OUT_SPEAKERS["piper"], seed)
    return prosodies[: TRAIN_SPEAKERS["piper"]], prosodies[TRAIN_SPEAKERS["piper"] :]


def _speak_as(row: dict, engine: str, name: str, speaker: KokoroSpeaker | PiperProsody) -> None:
    """Turn a planned espeak-ng row into one that `engine`'s `speaker` says."""
    for espeak_only in ("rate_wpm", "pitch", "pitch_range"):
        row.pop(espeak_only, None)
    row.update(engine=engine, voice=name, speaker=name, **{f"{engine}_speaker": vars(speaker).copy()})
    if engine == "kokoro":
        row["kokoro_speaker"]["weights"] = list(speaker.weights)


def apply_voice_mix(rows: list[dict], mix: dict[str, float], seed: int) -> list[dict]:
    """
    Give `mix`'s share of the training rows to each neural engine (a balanced draw: the counts are exact) with its
    training speakers in turn, and append one held-out split per neural engine: the `eval_speakers` sentences said
    by its held-out speakers. Returns the new rows; espeak-ng rows are left as planned.
    """
    rng = random.Random(f"mel-llm-synthetic-{seed}-voice-mix")
    train = [row for row in rows if row["split"] == "train"]
    engines = [name for name, share in mix.items() for _ in range(round(share * len(train)))]
    engines = (engines + ["espeak"] * len(train))[: len(train)]
    rng.shuffle(engines)
    extra = []
    for engine in NEURAL_ENGINES:
        if engine not in mix:
            continue
        training, held_out = _speakers(engine, seed)
        mine = [row for row, name in zip(train, engines, strict=True) if name == engine]
        for index, row in enumerate(mine):
            _speak_as(row, engine, f"{engine}-{index % len(training):03d}", training[index % len(training)])
        sentences = [row for row in rows if row["split"] == "eval_speakers"]
        for index, source in enumerate(sentences):
            row = {**source, "split": f"eval_{engine}", "path": f"eval_{engine}/{index:06d}.wav"}
            name = f"{engine}-held-out-{index % len(held_out):03d}"
            _speak_as(row, engine, name, held_out[index % len(held_out)])
            extra.append(row)
    return rows + extra


def speak_with_one_voice(rows: list[dict], engine: str) -> list[dict]:
    """A single-speaker corpus in a neural voice (a TTS corpus): every row said by `engine` at its default settings."""
    if engine != "piper":
        raise ValueError(f"A single-voice neural corpus has the Piper voice only (voice='piper'), not {engine!r}.")
    for row in rows:
        _speak_as(row, engine, engine, PiperProsody())
    return rows


def synthesize_neural_shard(job: tuple[str, int, list[dict]]) -> list[tuple[float, list[float]]]:
    """
    `synthetic_corpus.synthesize_shard` for one neural engine's rows, in a fresh process on one thread:
    `(root, seed, rows)` → 16 kHz WAVs under `root`; each clip's duration and its words' start times.
    """
    root, shard_seed, rows = job
    engine = rows[0]["engine"]
    if engine == "kokoro":
        kokoro = KokoroSynthesizer(threads=1)

        def speak(row: dict):
            return kokoro.synthesize_with_word_starts(row["transcript"], KokoroSpeaker(**_kokoro_fields(row)))

        source_rate = kokoro.sampling_rate
    else:
        piper = PiperSynthesizer(threads=1, seed=shard_seed)

        def speak(row: dict):
            return piper.synthesize_with_word_starts(row["transcript"], PiperProsody(**row["piper_speaker"]))

        source_rate = piper.sampling_rate
    timings = []
    for row in rows:
        audio, starts = speak(row)
        audio, trimmed = to_training_clip_with_offset(audio, source_rate, 16_000)
        write_wav(Path(root) / row["path"], audio, 16_000)
        duration = round(len(audio) / 16_000, 3)
        timings.append((duration, [round(min(max(t - trimmed, 0.0), duration), 3) for t in starts]))
    return timings


def _kokoro_fields(row: dict) -> dict:
    fields = dict(row["kokoro_speaker"])
    fields["weights"] = tuple(fields["weights"])
    return fields


__all__ = [
    "ENGINES",
    "NEURAL_SHARD_SIZE",
    "UTTERANCES_PER_SECOND_PER_PROCESS",
    "apply_voice_mix",
    "held_out_splits",
    "parse_voice_mix",
    "speak_with_one_voice",
    "synthesize_neural_shard",
]
