"""On-the-fly mixing: the requested SNR, determinism with a seed, restorable generator state."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rtenhance.train.config import AugmentConfig
from rtenhance.train.corpus import Clip
from rtenhance.train.mixing import (
    Mixer,
    StepBatches,
    coloured_noise,
    mains_hum,
    noise_segment,
    power,
    random_eq,
    reverberate,
    scale_to_snr,
)
from tests.train.helpers import RATE

NO_DISTORTION = AugmentConfig(bandlimit_prob=0.0, clip_prob=0.0)


def _snr_db(speech: np.ndarray, noise: np.ndarray) -> float:
    return 10.0 * np.log10(power(speech) / power(noise))


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 20.0])
def test_scale_to_snr(snr):
    rng = np.random.default_rng(0)
    speech, noise = rng.standard_normal(RATE), 3.0 * rng.standard_normal(RATE)
    assert abs(_snr_db(speech, scale_to_snr(speech, noise, snr)) - snr) < 0.01


def test_mixtures_have_the_requested_snr(tiny_corpora):
    mixer = Mixer(tiny_corpora[0], dataclasses.replace(NO_DISTORTION, reverb_prob=0.5, synthetic_prob=0.5), RATE, 3)
    for _ in range(40):
        m = mixer.example(1.0)
        assert abs(_snr_db(m.speech, m.noise) - m.snr_db) < 0.1
        np.testing.assert_allclose(m.noisy, m.speech + m.noise, atol=1e-6)
        assert -5.0 <= m.snr_db <= 20.0
        assert np.max(np.abs(m.noisy)) <= 1.0


def test_same_seed_same_examples_and_state_restores(tiny_corpora):
    a = Mixer(tiny_corpora[0], AugmentConfig(), RATE, 11)
    b = Mixer(tiny_corpora[0], AugmentConfig(), RATE, 11)
    for _ in range(5):
        ma, mb = a.example(1.0), b.example(1.0)
        np.testing.assert_array_equal(ma.noisy, mb.noisy)
        np.testing.assert_array_equal(ma.target, mb.target)
    state = a.state_dict()
    expected = [a.example(1.0).noisy for _ in range(3)]
    c = Mixer(tiny_corpora[0], AugmentConfig(), RATE, 99)
    c.load_state_dict(state)
    for want in expected:
        np.testing.assert_array_equal(c.example(1.0).noisy, want)
    assert not np.array_equal(Mixer(tiny_corpora[0], AugmentConfig(), RATE, 12).example(1.0).noisy, expected[0])


def test_reverberation_keeps_direct_path_aligned_and_target_is_the_early_part():
    rng = np.random.default_rng(1)
    speech = rng.standard_normal(RATE).astype(np.float32)
    rir = np.zeros(4000, dtype=np.float32)
    rir[30], rir[100], rir[3000] = 0.5, 0.2, 0.1  # direct path, early reflection, late reflection
    wet, early = reverberate(speech, rir, early_samples=800)
    np.testing.assert_allclose(early[200:], speech[200:] + 0.4 * speech[130:-70], atol=1e-4)
    np.testing.assert_allclose(wet[3000:] - early[3000:], 0.2 * speech[30 : RATE - 2970], atol=1e-4)


def test_synthetic_noises_have_unit_rms_and_the_right_colour():
    rng = np.random.default_rng(2)
    n = 4 * RATE
    for exponent in (0.0, 1.0, 2.0):
        assert abs(power(coloured_noise(rng, n, exponent)) - 1.0) < 1e-6
    brown = np.abs(np.fft.rfft(coloured_noise(rng, n, 2.0))) ** 2
    white = np.abs(np.fft.rfft(coloured_noise(rng, n, 0.0))) ** 2
    low, high = slice(10, 400), slice(-4000, None)  # ~2.5-100 Hz vs the top ~1 kHz
    assert brown[low].mean() / brown[high].mean() > 1e3 > white[low].mean() / white[high].mean()
    hum = mains_hum(rng, n, RATE)
    spectrum = np.abs(np.fft.rfft(hum))
    peak_hz = np.argmax(spectrum[: 400 * 4]) * RATE / n  # strongest component below 400 Hz
    assert abs(power(hum) - 1.0) < 1e-6
    assert min(abs(peak_hz / 50.0 - round(peak_hz / 50.0)), abs(peak_hz / 60.0 - round(peak_hz / 60.0))) < 0.02


def test_noise_speed_reads_the_clip_faster_or_slower():
    ramp = Clip("ramp", np.arange(1000, dtype=np.float32))
    rng = np.random.default_rng(0)
    fast = noise_segment(rng, (ramp,), 100, speed=2.0)
    np.testing.assert_allclose(np.diff(fast)[np.diff(fast) > 0], 2.0)  # wraps around at the clip's end
    slow = noise_segment(rng, (ramp,), 100, speed=0.5)
    np.testing.assert_allclose(np.diff(slow)[np.diff(slow) > 0], 0.5)


def test_random_eq_keeps_length_and_bounds_the_gain():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(RATE).astype(np.float32)
    y = random_eq(rng, x, 6.0, RATE)
    assert y.shape == x.shape and not np.allclose(x, y)
    ratio_db = 10.0 * np.log10(np.abs(np.fft.rfft(y)) ** 2 / np.abs(np.fft.rfft(x)) ** 2)
    assert np.all(np.abs(ratio_db) <= 6.0 + 1e-3)


def test_step_batches_depend_only_on_seed_and_step(tiny_corpora):
    train, _ = tiny_corpora
    batches = StepBatches(train, AugmentConfig(), 16000, seed=3, batch_size=2, seconds=0.5)
    again = StepBatches(train, AugmentConfig(), 16000, seed=3, batch_size=2, seconds=0.5)
    noisy, target = batches[5]
    assert noisy.shape == target.shape == (2, 8000)
    later_first = again[5]
    assert torch.equal(noisy, later_first[0]) and torch.equal(target, later_first[1])
    assert not torch.equal(noisy, batches[6][0])
    other_seed = StepBatches(train, AugmentConfig(), 16000, seed=4, batch_size=2, seconds=0.5)
    assert not torch.equal(noisy, other_seed[5][0])
