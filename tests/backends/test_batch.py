import numpy as np
import pytest

from rtenhance.backends.native import NativeStepper
from tests.conftest import randomised_model

FRAME_TOLERANCE = 1e-5  # relative to the frame's largest value


@pytest.fixture(scope="module")
def model():
    from rtenhance.backends.native.batch import load_batch_library
    from rtenhance.native_build import NativeUnavailable

    try:
        load_batch_library()
    except NativeUnavailable as exc:
        pytest.skip(f"the batched native step is unavailable here: {exc}")
    return randomised_model(seed=4)


def _frames(rng: np.random.Generator, n: int, bins: int) -> np.ndarray:
    return (rng.standard_normal((n, bins, 2)) * rng.uniform(0.1, 5.0, (n, 1, 1))).astype(np.float32)


def test_idle_lanes_keep_their_state_and_growth_keeps_every_stream(model) -> None:
    from rtenhance.backends.native.batch import BatchStepper

    rng = np.random.default_rng(0)
    stepper = BatchStepper(model, slots=1)
    bins = stepper.n_bins
    refs = {stepper.open_slot(): NativeStepper(model) for _ in range(stepper.lanes + 3)}
    assert stepper.capacity >= stepper.lanes + 3
    for tick in range(40):
        if tick == 20:  # grow past the capacity in the middle of the run
            target = stepper.capacity + 1
            while len(refs) < target:
                refs[stepper.open_slot()] = NativeStepper(model)
            assert stepper.capacity >= target
        slots = np.array(sorted(s for s in refs if rng.random() < 0.6), dtype=np.int64)
        frames = _frames(rng, slots.shape[0], bins)
        out = stepper.step(slots, frames)
        for i, slot in enumerate(slots):
            ref = refs[slot].step(frames[i])
            assert np.abs(out[i] - ref).max() <= FRAME_TOLERANCE * np.abs(ref).max(), (tick, slot)


def test_slots_are_reused_lowest_first_and_closing_twice_is_refused(model) -> None:
    from rtenhance.backends.native.batch import BatchStepper

    stepper = BatchStepper(model)
    slots = [stepper.open_slot() for _ in range(5)]
    assert slots == list(range(5))
    stepper.close_slot(3)
    stepper.close_slot(1)
    assert stepper.open_slot() == 1
    with pytest.raises(ValueError, match="slot 3"):
        stepper.close_slot(3)
    assert stepper.step(np.zeros(0, dtype=np.int64), np.zeros((0, stepper.n_bins, 2), np.float32)).shape == (0, stepper.n_bins, 2)
