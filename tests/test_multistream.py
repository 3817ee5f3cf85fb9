import numpy as np
import pytest

from rtenhance.backends import make_stepper
from rtenhance.enhancer import Enhancer
from rtenhance.multistream import MultiStreamEnhancer
from tests.conftest import noise_signal, randomised_model

TOLERANCE = 1e-5  # per sample, against the stream's own single-stream Enhancer


@pytest.fixture(scope="module")
def model():
    from rtenhance.backends.native.batch import load_batch_library
    from rtenhance.native_build import NativeUnavailable

    try:
        load_batch_library()
    except NativeUnavailable as exc:
        pytest.skip(f"the batched native step is unavailable here: {exc}")
    return randomised_model(seed=11)


def test_random_join_leave_and_skipped_hops_equal_single_stream_enhancers(model) -> None:
    rng = np.random.default_rng(7)
    multi = MultiStreamEnhancer(model)
    hop = multi.hop_samples
    singles: dict[int, Enhancer] = {}
    fed: dict[int, list[np.ndarray]] = {}
    got: dict[int, list[np.ndarray]] = {}
    expected: dict[int, list[np.ndarray]] = {}
    signals = [noise_signal(2.0, seed=k) for k in range(5)]
    checked = 0
    for tick in range(70):
        if tick == 0 or rng.random() < 0.25:
            for _ in range(int(rng.integers(1, 3))):
                sid = multi.add_stream()
                singles[sid] = Enhancer(make_stepper(model, "native"), model.config.stft)
                fed[sid], got[sid], expected[sid] = [], [], []
        if len(singles) > 2 and rng.random() < 0.2:
            gone = int(rng.choice(list(singles)))
            multi.remove_stream(gone)
            checked += _compare(got.pop(gone), expected.pop(gone))
            del singles[gone]
        chunks = {}
        for sid in singles:
            if rng.random() < 0.2:
                continue  # this stream misses the tick
            n = int(rng.choice([hop, hop, 0, 1, 100, 2 * hop + 17, 3 * hop]))
            start = int(rng.integers(0, 16000))
            chunks[sid] = signals[sid % len(signals)][start : start + n] * float(rng.uniform(0.2, 4.0))
        out = multi.process(chunks)
        assert set(out) == set(chunks)
        for sid, samples in chunks.items():
            got[sid].append(out[sid])
            expected[sid].append(singles[sid].feed(samples))
    for sid in list(singles):
        checked += _compare(got[sid], expected[sid])
    assert checked > 200 * hop


def _compare(got: list[np.ndarray], expected: list[np.ndarray]) -> int:
    a, b = np.concatenate([np.zeros(0, np.float32), *got]), np.concatenate([np.zeros(0, np.float32), *expected])
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=TOLERANCE)
    return a.shape[0]


def test_process_hops_equals_process(model) -> None:
    a, b = MultiStreamEnhancer(model), MultiStreamEnhancer(model)
    ids_a = [a.add_stream() for _ in range(11)]
    ids_b = [b.add_stream() for _ in range(11)]
    hop = a.hop_samples
    for k in range(6):
        hops = np.stack([noise_signal(0.2, seed=10 * k + i)[:hop] for i in range(11)])
        out = a.process_hops(ids_a, hops)
        ref = b.process(dict(zip(ids_b, hops)))
        for i, sid in enumerate(ids_b):
            np.testing.assert_array_equal(out[i], ref[sid])


def test_ids_are_not_reused_and_unknown_ids_are_refused(model) -> None:
    multi = MultiStreamEnhancer(model)
    first = multi.add_stream()
    multi.remove_stream(first)
    second = multi.add_stream()
    assert second != first
    assert multi.stream_ids == [second]
    with pytest.raises(KeyError, match=str(first)):
        multi.process({first: np.zeros(256, dtype=np.float32)})
    with pytest.raises(KeyError):
        multi.remove_stream(first)


def test_a_slot_reused_by_a_new_stream_starts_from_silence(model) -> None:
    multi = MultiStreamEnhancer(model)
    old = multi.add_stream()
    loud = noise_signal(0.5, seed=3) * 8
    multi.process({old: loud})
    multi.remove_stream(old)
    new = multi.add_stream()
    fresh = Enhancer(make_stepper(model, "native"), model.config.stft)
    x = noise_signal(0.5, seed=4)
    np.testing.assert_allclose(multi.process({new: x})[new], fresh.feed(x), rtol=0, atol=TOLERANCE)
