"""SpscRing: FIFO order across wrap-around, and its overflow/underflow accounting."""

from __future__ import annotations

import numpy as np

from rtenhance.audio.io.ring import SpscRing


def test_any_chunking_is_fifo_across_wraparound():
    rng = np.random.default_rng(0)
    ring = SpscRing(97)
    data = rng.standard_normal(5000).astype(np.float32)
    out, written, buffer = [], 0, np.zeros(97, dtype=np.float32)
    while written < data.shape[0] or ring.available:
        n = min(int(rng.integers(0, 60)), ring.free, data.shape[0] - written)
        ring.write(data[written : written + n])
        written += n
        k = ring.read_into(buffer[: min(int(rng.integers(0, 60)), ring.available)])
        out.append(buffer[:k].copy())
    np.testing.assert_array_equal(np.concatenate(out), data)
    assert ring.overflows == ring.underflows == 0


def test_overflow_drops_the_newest_and_counts():
    ring = SpscRing(10)
    assert ring.write(np.arange(8, dtype=np.float32)) == 8
    assert ring.write(np.arange(5, dtype=np.float32)) == 2
    assert (ring.overflows, ring.dropped_samples) == (1, 3)
    out = np.zeros(10, dtype=np.float32)
    assert ring.read_into(out) == 10
    np.testing.assert_array_equal(out, [0, 1, 2, 3, 4, 5, 6, 7, 0, 1])


def test_underflow_counts_the_missing_samples():
    ring = SpscRing(10)
    ring.write(np.ones(3, dtype=np.float32))
    out = np.zeros(5, dtype=np.float32)
    assert ring.read_into(out) == 3
    assert (ring.underflows, ring.missing_samples) == (1, 2)
    assert ring.read_into(out[:0]) == 0 and ring.underflows == 1


def test_skip_and_reset_keep_counters():
    ring = SpscRing(4)
    ring.write(np.arange(6, dtype=np.float32))
    assert ring.skip(3) == 3 and ring.available == 1
    ring.reset()
    assert ring.available == 0 and ring.free == 4 and ring.overflows == 1
