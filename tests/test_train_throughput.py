"""The throughput benchmark's batch counts: the same tokens for a packed batch as for the padded one."""

import numpy as np

from benchmarks.train_throughput import BatchCounter
from training.data import MelLLMDataCollator


def test_packed_and_padded_batches_count_the_same_tokens(processor):
    rng = np.random.default_rng(0)
    examples = [
        {"audio": (0.1 * rng.standard_normal(n)).astype(np.float32), "text": text, "id": i, "seed": i}
        for i, (n, text) in enumerate([(48_000, "one two three"), (4_000, "nine"), (9_000, "zero four")])
    ]
    counts = []
    for pack in (False, True):
        counter = BatchCounter(MelLLMDataCollator(processor, pack_sequences=pack), sampling_rate=16_000)
        batch = counter(examples)
        assert ("attention_mask" in batch) != pack
        counts.append(counter.queue.popleft())
    assert counts[0] == counts[1]
    assert counts[0][0] > counts[0][1] > 0  # tokens > target tokens
