"""Chunked enhancement equals the whole-signal forms: the offline model (centred framing) and the live path."""

from __future__ import annotations

import numpy as np
import pytest

from rtenhance.backends import make_stepper
from rtenhance.chunk_enhance import CausalStream, CentredStream
from rtenhance.enhancer import Enhancer, enhance_offline
from rtenhance.file_enhance import enhance_samples
from tests.conftest import noise_signal, randomised_model


@pytest.fixture(scope="module")
def model():
    return randomised_model()


def _chunked(stream, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cuts = sorted(rng.integers(0, x.shape[0] + 1, 4))
    parts, start = [], 0
    for cut in [*cuts, x.shape[0]]:
        parts.append(stream.feed(x[start:cut]))
        start = cut
    return np.concatenate([*parts, stream.finish()])


@pytest.mark.parametrize("n", [1, 100, 256, 257, 511, 512, 1000, 16000 * 2 + 17])
def test_centred_chunks_equal_the_whole_file_forward(model, n):
    """GTCRN's state carried across chunks: the same output as ``GTCRN.forward`` over the whole file,
    whatever the chunk boundaries, including the reflect padding at both ends."""
    x = noise_signal(2.1, seed=n)[:n]
    reference = enhance_offline(model, x)
    rng = np.random.default_rng(n)
    for backend in ("torch", "native"):
        out = _chunked(CentredStream(make_stepper(model, backend), model.config.stft), x, rng)
        assert out.shape == reference.shape
        np.testing.assert_allclose(out, reference, atol=2e-6 * max(1.0, float(np.abs(reference).max())), err_msg=backend)


def test_causal_chunks_equal_the_live_path(model):
    x = noise_signal(1.3)
    reference = Enhancer(make_stepper(model, "native"), model.config.stft).enhance(x)
    out = _chunked(CausalStream(make_stepper(model, "native"), model.config.stft), x, np.random.default_rng(0))
    np.testing.assert_array_equal(out, reference)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_samples_in_blocks_equal_the_whole_signal(model, rate, monkeypatch):
    """Multichannel, resampled, in blocks much smaller than the signal: the whole-signal offline result
    (resample, ``enhance_offline``, resample back) within float tolerance."""
    from rtenhance import file_enhance
    from rtenhance.dsp.resample import resample

    monkeypatch.setattr(file_enhance, "BLOCK_FRAMES", 4099)
    x = np.stack([noise_signal(1.5, seed=1, rate=rate), 0.5 * noise_signal(1.5, seed=2, rate=rate)], axis=1)
    out = enhance_samples(model, x, rate)
    x16 = resample(x, rate, 16000) if rate != 16000 else x
    y = enhance_offline(model, np.ascontiguousarray(x16.T)).T
    y = resample(y, 16000, rate)[: x.shape[0]] if rate != 16000 else y
    assert out.shape == x.shape
    tolerance = 1e-5 if rate == 16000 else 2e-3  # soxr in blocks vs whole: the same filter, other block edges
    np.testing.assert_allclose(out[: y.shape[0]], y, atol=tolerance)
