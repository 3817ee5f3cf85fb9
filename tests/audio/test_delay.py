"""Delay control: splices keep the signal continuous, and the controller converges to its target."""

from __future__ import annotations

import numpy as np
import pytest

from rtenhance.audio.delay import DEADBAND_S, DelayController, splice

RATE = 48000


@pytest.mark.parametrize("jump", [-96, -17, 1, 50, 192])
def test_splice_changes_length_and_stays_continuous(jump):
    t = np.arange(768) / RATE
    chunk = np.sin(2 * np.pi * 200.0 * t).astype(np.float32)  # slow: a clean splice has no jump
    out = splice(chunk, jump, fade=96)
    assert out.shape[0] == chunk.shape[0] - jump
    assert np.max(np.abs(np.diff(out))) <= 1.5 * np.max(np.abs(np.diff(chunk)))
    assert splice(chunk, 0, fade=96) is chunk


def test_large_error_is_corrected_even_in_loud_audio():
    controller = DelayController(RATE, target_s=0.050)
    controller.observe(0.080)
    loud = np.full(768, 0.5, dtype=np.float32)
    total = 0
    for _ in range(50):
        out = controller.correct(loud)
        total += loud.shape[0] - out.shape[0]
    assert abs(controller.estimate_s - 0.050) < 0.008 + 1e-9
    assert controller.adjusted_samples == total > 0


def test_small_error_waits_for_quiet_audio():
    controller = DelayController(RATE, target_s=0.050)
    controller.observe(0.050 + 2 * DEADBAND_S)
    loud = np.full(768, 0.5, dtype=np.float32)
    assert controller.correct(loud) is loud
    quiet = np.full(768, 1e-4, dtype=np.float32)
    assert controller.correct(quiet).shape[0] < quiet.shape[0]
    controller.restart(0.050)
    assert controller.correct(quiet) is quiet  # no estimate yet: nothing to correct


def test_too_little_delay_inserts_samples():
    controller = DelayController(RATE, target_s=0.050)
    controller.observe(0.030)
    chunk = np.zeros(768, dtype=np.float32)
    assert controller.correct(chunk).shape[0] > chunk.shape[0]
    assert controller.adjusted_samples < 0
