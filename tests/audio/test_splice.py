"""splice: drops and repeats keep the signal continuous and change its length by the jump."""

from __future__ import annotations

import numpy as np
import pytest

from rtenhance.audio.realtime.splice import splice

RATE = 48000


@pytest.mark.parametrize("jump", [-96, -17, 1, 50, 192])
def test_splice_changes_length_and_stays_continuous(jump):
    t = np.arange(768) / RATE
    chunk = np.sin(2 * np.pi * 200.0 * t).astype(np.float32)  # slow: a clean splice has no jump
    out = splice(chunk, jump, fade=96)
    assert out.shape[0] == chunk.shape[0] - jump
    assert np.max(np.abs(np.diff(out))) <= 1.5 * np.max(np.abs(np.diff(chunk)))
    assert splice(chunk, 0, fade=96) is chunk
