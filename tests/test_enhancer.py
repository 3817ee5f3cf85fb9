import numpy as np
import pytest

from rtenhance.backends import make_stepper
from rtenhance.enhancer import Enhancer, enhance_offline
from tests.conftest import noise_signal, randomised_model


@pytest.fixture(scope="module")
def model():
    return randomised_model(seed=5)


def _run(enhancer: Enhancer, x: np.ndarray, chunk: int) -> np.ndarray:
    enhancer.reset()
    parts = [enhancer.feed(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)]
    parts.append(enhancer.flush())
    return np.concatenate(parts)


def test_any_chunking_gives_identical_output(model) -> None:
    x = noise_signal(2.0, seed=1)[:31001]
    enhancer = Enhancer(make_stepper(model, "torch"), model.config.stft)
    outputs = {chunk: _run(enhancer, x, chunk) for chunk in (1, 7, 256, 1000, 16000)}
    reference = outputs[16000]
    assert reference.shape == (x.shape[0] + enhancer.latency_samples,)
    for chunk, out in outputs.items():
        assert np.array_equal(out, reference), chunk


def test_streaming_equals_offline_shifted_by_latency(model) -> None:
    x = noise_signal(2.0, seed=2)
    enhancer = Enhancer(make_stepper(model, "torch"), model.config.stft)
    streamed = _run(enhancer, x, 1000)
    offline = enhance_offline(model, x, causal=True)
    lag = enhancer.latency_samples
    assert lag == 256
    np.testing.assert_allclose(streamed[lag:], offline, atol=1e-5)
    np.testing.assert_allclose(enhancer.enhance(x), offline, atol=1e-5)


def test_process_is_one_hop_and_reset_restarts(model) -> None:
    x = noise_signal(0.5, seed=3)
    enhancer = Enhancer(make_stepper(model, "torch"), model.config.stft)
    hop = enhancer.hop_samples
    first = [enhancer.process(x[i : i + hop]).copy() for i in range(0, 8 * hop, hop)]
    enhancer.reset()
    second = [enhancer.process(x[i : i + hop]).copy() for i in range(0, 8 * hop, hop)]
    assert all(a.shape == (hop,) for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_feed_nothing_returns_nothing(model) -> None:
    enhancer = Enhancer(make_stepper(model, "torch"), model.config.stft)
    assert enhancer.feed(np.zeros(0, np.float32)).shape == (0,)
    assert enhancer.feed(np.zeros(100, np.float32)).shape == (0,)
    assert enhancer.flush().shape == (100 + enhancer.latency_samples,)
