"""benchmarks.synthetic_digits: isolated espeak digits, band-limited like FSDD, as a manifest the recipe reads."""

import numpy as np
import soundfile

from benchmarks import synthetic_digits
from training.corpus.template_text import ONES
from training.data import read_manifest


def test_digits_are_band_limited_like_fsdd_and_readable_as_a_manifest(tmp_path, capsys):
    manifest = synthetic_digits.main(["--out", str(tmp_path), "--num-clips", "12"])
    log = capsys.readouterr().err  # what it builds, then its progress (a line at the end in a non-terminal log)
    assert "Synthesising 12 spoken digits" in log
    assert "espeak-ng digits: 12/12" in log
    utterances = read_manifest(manifest)
    assert [u.text for u in utterances] == [ONES[i % 10] for i in range(12)]
    assert len({u.metadata["voice"] for u in utterances}) > 6
    for utterance in utterances:
        audio, rate = soundfile.read(utterance.audio_path, dtype="float32")
        assert rate == 16_000
        assert 0.15 < len(audio) / rate < 2.0
        power = np.abs(np.fft.rfft(audio)) ** 2
        above_4khz = power[np.fft.rfftfreq(len(audio), 1 / rate) > 4_100].sum() / power.sum()
        assert above_4khz < 1e-3  # nothing above FSDD's 8 kHz Nyquist
