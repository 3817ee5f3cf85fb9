"""FrameGate: transparent when the model keeps up, exact passthrough when it does not, linear strength mix."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from rtenhance.audio.realtime.gate import FrameGate, dry_gain
from rtenhance.backends import make_stepper
from rtenhance.enhancer import Enhancer
from rtenhance.model.gtcrn import GTCRN


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GTCRN().eval()


@pytest.fixture(scope="module")
def noisy():
    return (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)


def _run(model, gate_setup, x):
    gate = FrameGate(make_stepper(model, "torch"), model.config.stft.n_bins)
    gate_setup(gate)
    try:
        return Enhancer(gate, model.config.stft).enhance(x), gate
    finally:
        gate.close()


def test_gate_is_transparent(model, noisy):
    reference = Enhancer(make_stepper(model, "torch"), model.config.stft).enhance(noisy)
    out, gate = _run(model, lambda g: None, noisy)
    np.testing.assert_allclose(out, reference, atol=1e-6)
    assert gate.state_resets == 0


def test_passthrough_reconstructs_the_input(model, noisy):
    out, _ = _run(model, lambda g: setattr(g, "run_model", False), noisy)
    np.testing.assert_allclose(out, noisy, atol=1e-5)


def test_strength_mixes_enhanced_and_dry_linearly(model, noisy):
    enhanced, _ = _run(model, lambda g: None, noisy)
    g = dry_gain(6.0)
    mixed, _ = _run(model, lambda gate: setattr(gate, "dry", g), noisy)
    np.testing.assert_allclose(mixed, (1 - g) * enhanced + g * noisy, atol=1e-5)
    assert dry_gain(0.0) == 1.0 and dry_gain(100.0) < 1e-4


def test_a_late_model_is_passed_through_then_reset(model):
    gate = FrameGate(make_stepper(model, "torch"), model.config.stft.n_bins)
    frame = np.random.default_rng(1).standard_normal((model.config.stft.n_bins, 2)).astype(np.float32)
    try:
        gate.slow_s, gate.deadline_s = 0.2, 0.01
        assert gate.step(frame) is frame and gate.missed
        assert gate.step(frame) is frame and gate.missed  # still busy with the late frame
        gate.slow_s, gate.deadline_s = 0.0, 5.0
        time.sleep(0.25)
        out = gate.step(frame)
        assert out is not frame and not gate.missed and gate.state_resets == 1
    finally:
        gate.close()
