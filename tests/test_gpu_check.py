"""The arithmetic `benchmarks/gpu_check.py` sets a lent GPU's timings against (issue 19); the GPU runs themselves
happen only on a lent machine."""

import pytest

from benchmarks.gpu_check import decode_step_seconds, device_peaks, lora_mfu, roofline_fraction


def test_known_gpus_are_found_by_name_and_others_give_no_fractions():
    assert device_peaks("NVIDIA H200") == (989e12, 4.8e12)
    assert device_peaks("NVIDIA H100 80GB HBM3") == (989e12, 3.35e12)
    assert device_peaks("Tesla T4") is None


def test_a_decode_step_is_the_cost_beyond_the_first_token():
    assert decode_step_seconds(0.5 + 31 * 0.002, 0.5, 32) == pytest.approx(0.002)


def test_the_roofline_fraction_is_one_when_a_step_only_reads_its_weights():
    weights = 7.7e9  # a 3.84 B model in bf16
    assert roofline_fraction(weights, 4.8e12, weights / 4.8e12) == pytest.approx(1.0)
    assert roofline_fraction(weights, 4.8e12, 10 * weights / 4.8e12) == pytest.approx(0.1)


def test_lora_mfu_counts_forward_and_input_gradients():
    # 3.84 B parameters, 8 clips of 150 tokens in 0.30 s on a 989 TFLOP/s part: 4 · N · tokens / s / peak
    assert lora_mfu(3_840_000_000, 1200, 0.30, 989e12) == pytest.approx(4 * 3.84e9 * 1200 / 0.30 / 989e12)
    assert lora_mfu(3_840_000_000, 1200, 0.30, 989e12) == pytest.approx(0.0621, abs=1e-4)
