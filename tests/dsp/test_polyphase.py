"""PolyphaseResampler: chunking-independent, exact output counts, a clean passband and stopband, known delay;
the C filter and the NumPy one agree."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from rtenhance.dsp import polyphase
from rtenhance.dsp.polyphase import PolyphaseResampler

RATE_PAIRS = [(48000, 16000), (16000, 48000), (44100, 16000), (16000, 44100)]


def _stream(resampler: PolyphaseResampler, x: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts, pos = [], 0
    while pos < x.shape[0]:
        n = int(rng.integers(0, 1000))
        parts.append(resampler.process(x[pos : pos + n]).copy())  # valid until the next call
        pos += n
    return np.concatenate(parts)


@pytest.mark.parametrize("native", [True, False], ids=["c", "numpy"])
@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_any_chunking_equals_offline_filtering(in_rate, out_rate, native):
    x = np.random.default_rng(1).standard_normal(in_rate // 2).astype(np.float32)
    r = PolyphaseResampler(in_rate, out_rate, native=native)
    assert (r._native is not None) == native
    y = _stream(r, x, seed=2)
    assert y.shape[0] == -(-x.shape[0] * r.up // r.down)
    taps = r._phases[:, ::-1].T.reshape(-1)  # back to the prototype filter
    expected = signal.upfirdn(taps, x, r.up, r.down)[: y.shape[0]]
    np.testing.assert_allclose(y, expected, atol=2e-5)


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_passband_flat_stopband_rejected_and_delay_known(in_rate, out_rate):
    r = PolyphaseResampler(in_rate, out_rate)
    t = np.arange(in_rate) / in_rate
    y = r.process(np.sin(2 * np.pi * 1000.0 * t).astype(np.float32))
    steady = y[out_rate // 4 : -out_rate // 4]
    assert abs(20 * np.log10(np.sqrt(2) * np.sqrt(np.mean(steady**2)))) < 0.1  # 1 kHz: unity gain
    if in_rate > out_rate:  # 10 kHz cannot be represented at 16 kHz: it must not alias in
        r.reset()
        alias = r.process(np.sin(2 * np.pi * 10000.0 * t).astype(np.float32))[out_rate // 4 : -out_rate // 4]
        assert 20 * np.log10(np.sqrt(2) * np.sqrt(np.mean(alias**2))) < -55.0
    r.reset()
    impulse = np.zeros(in_rate // 10, dtype=np.float32)
    impulse[0] = 1.0
    response = r.process(impulse)
    assert abs(np.argmax(response) / out_rate - r.delay_seconds) <= 1.0 / min(in_rate, out_rate)


def test_equal_rates_pass_through():
    r = PolyphaseResampler(16000, 16000)
    x = np.arange(10, dtype=np.float32)
    assert r.passthrough and r.delay_seconds == 0.0
    np.testing.assert_array_equal(r.process(x), x)


def test_c_and_numpy_agree_across_a_buffer_growth(monkeypatch):
    monkeypatch.setattr(polyphase, "INITIAL_CAPACITY", 100)
    x = np.random.default_rng(3).standard_normal(5000).astype(np.float32)
    c, numpy = PolyphaseResampler(44100, 16000), PolyphaseResampler(44100, 16000, native=False)
    for chunk in (x[:50], x[50:1050], x[1050:1051], x[1051:]):  # the second and last chunks outgrow the buffers
        np.testing.assert_allclose(c.process(chunk), numpy.process(chunk), rtol=0, atol=1e-6)
    c.reset()
    numpy.reset()
    np.testing.assert_allclose(c.process(x[::2]), numpy.process(x[::2]), rtol=0, atol=1e-6)  # strided input
