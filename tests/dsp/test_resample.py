import numpy as np
import pytest

from rtenhance.dsp.resample import StreamingResampler, resample


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_offline_length_and_tone(rate: int) -> None:
    t = np.arange(rate) / rate
    x = np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    y = resample(x, rate, 16000)
    assert y.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) - 440) <= 1


def test_streaming_any_chunking_is_identical() -> None:
    x = np.random.default_rng(0).standard_normal(48000).astype(np.float32)
    outs = []
    for chunk in (480, 1000, 7):
        r = StreamingResampler(48000, 16000)
        parts = [r.process(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)]
        parts.append(r.process(np.zeros(0, np.float32), last=True))
        outs.append(np.concatenate(parts))
    assert abs(outs[0].shape[0] - 16000) <= 1
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], atol=1e-6)


def test_streaming_passthrough_at_equal_rates() -> None:
    r = StreamingResampler(16000, 16000)
    x = np.arange(100, dtype=np.float32)
    assert r.passthrough
    np.testing.assert_array_equal(r.process(x), x)
