"""The torch-free offline path (``enhance_centred``: NumPy centred STFT, the model stepped frame by frame,
overlap-add with the window envelope) equals ``enhance_offline`` (``GTCRN.forward`` over torch.stft)."""

from __future__ import annotations

import numpy as np
import pytest

from rtenhance.backends import make_stepper
from rtenhance.enhancer import enhance_centred, enhance_offline
from tests.conftest import noise_signal, randomised_model

TOLERANCE = 2e-5  # of the output's peak


@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("n", [16000 + 77, 4096, 300, 100])
def test_centred_stepping_equals_forward(backend: str, n: int) -> None:
    model = randomised_model(seed=1)
    x = noise_signal(n / 16000, seed=n)[:n].astype(np.float32)
    reference = enhance_offline(model, x)
    out = enhance_centred(make_stepper(model, backend), x, model.config.stft)
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, reference, atol=TOLERANCE * np.abs(reference).max())
