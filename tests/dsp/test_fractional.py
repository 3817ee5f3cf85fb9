"""DriftResampler: identity at ratio 1, continuity across any chunking, and the length it promises."""

from __future__ import annotations

import numpy as np
import pytest

from rtenhance.dsp.fractional import DriftResampler


def run(signal: np.ndarray, chunks: list[int], ratio: float) -> np.ndarray:
    resampler = DriftResampler(max(chunks))
    out, start = [], 0
    for size in chunks:
        out.append(resampler.process(signal[start : start + size], ratio).copy())
        start += size
    return np.concatenate(out)


def test_ratio_one_is_the_input_two_samples_late():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    y = run(x, [256] * 3 + [232], 1.0)
    d = DriftResampler.delay_samples
    np.testing.assert_allclose(y[d:], x[: y.shape[0] - d], atol=1e-6)
    assert np.all(y[:d] == 0) and y.shape[0] == x.shape[0]


@pytest.mark.parametrize("ratio", [0.999, 1.0, 1.0005, 1.004])
def test_any_chunking_gives_the_same_samples(ratio):
    x = np.random.default_rng(1).standard_normal(4096).astype(np.float32)
    whole = run(x, [4096], ratio)
    rng = np.random.default_rng(2)
    sizes = [int(s) for s in rng.integers(1, 200, size=30)]
    sizes.append(4096 - sum(sizes))
    assert sizes[-1] > 0
    pieces = run(x, sizes, ratio)
    n = min(whole.shape[0], pieces.shape[0])
    assert abs(whole.shape[0] - pieces.shape[0]) <= 1
    np.testing.assert_allclose(pieces[:n], whole[:n], atol=1e-6)


def test_output_length_follows_the_ratio_and_a_tone_keeps_its_pitch():
    rate, ratio = 16000, 1.002
    t = np.arange(rate * 4) / rate
    x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    y = run(x, [256] * (x.shape[0] // 256), ratio)
    assert abs(y.shape[0] - x.shape[0] * ratio) <= 3
    spectrum = np.abs(np.fft.rfft(y[rate:] * np.hanning(y.shape[0] - rate)))
    peak_hz = np.argmax(spectrum) * rate / (y.shape[0] - rate)
    assert abs(peak_hz - 440 / ratio) < 1.0


def test_too_long_a_chunk_is_refused():
    with pytest.raises(ValueError, match="exceeds"):
        DriftResampler(16).process(np.zeros(17, dtype=np.float32), 1.0)
