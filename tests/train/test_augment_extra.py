"""Babble noise, codec-like quantisation and the pre-mixed (fixed) data mode."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rtenhance.config import ConfigError
from rtenhance.train.config import AugmentConfig
from rtenhance.train.corpus import Clip, Corpus
from rtenhance.train.mixing import Mixer, StepBatches, babble, mu_law_quantise, power
from tests.train.helpers import RATE


def test_babble_of_one_talker_is_a_crop_of_the_speech_at_unit_level():
    clip = Clip("a.wav", np.sin(np.arange(RATE) * 0.05).astype(np.float32) * 0.3)
    out = babble(np.random.default_rng(0), (clip,), RATE // 4, talkers=1)
    assert power(out) == pytest.approx(1.0, rel=1e-5)
    n = RATE // 4
    crops = [clip.samples[s : s + n] for s in range(RATE - n + 1)]
    assert any(np.allclose(c / np.sqrt(power(c)), out, atol=1e-4) for c in crops)  # a crop of the clip


def test_mixer_with_babble_uses_speech_instead_of_noise_clips(tiny_corpora):
    train = tiny_corpora[0]
    silent_noise = Corpus(train.speech, tuple(Clip(c.name, np.zeros_like(c.samples)) for c in train.noise), ())
    quiet = AugmentConfig(synthetic_prob=0.0, synthetic_only_prob=0.0, bandlimit_prob=0.0, clip_prob=0.0)
    with_babble = dataclasses.replace(quiet, babble_prob=1.0, babble_talkers=(2, 2))
    noise = Mixer(silent_noise, with_babble, RATE, 1).example(0.5).noise
    # the tiny corpus's speech is harmonic: babble of it has most energy at low frequencies, unlike the
    # white synthetic noise that a silent noise clip falls back to
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    assert spectrum[: spectrum.size // 8].sum() > 0.9 * spectrum.sum()
    fallback = Mixer(silent_noise, quiet, RATE, 1).example(0.5).noise
    assert power(fallback) > 0 and not np.allclose(fallback, noise)


def test_mu_law_quantisation_levels_and_error():
    x = np.linspace(-1.0, 1.0, 20001).astype(np.float32)
    coarse = mu_law_quantise(x, 6.0)
    assert np.unique(coarse).size <= 2**6 + 1
    fine = mu_law_quantise(x, 16.0)
    np.testing.assert_allclose(fine, x, atol=2e-4)
    # mu-law keeps small signals finer than large ones
    small, large = np.abs(x) < 0.01, np.abs(x) > 0.5
    err = np.abs(mu_law_quantise(x, 8.0) - x)
    assert err[small].max() < err[large].max() / 10


def test_codec_degrades_only_the_noisy_input(tiny_corpora):
    base = AugmentConfig(bandlimit_prob=0.0, clip_prob=0.0)
    a = Mixer(tiny_corpora[0], base, RATE, 3).example(0.5)
    b = Mixer(tiny_corpora[0], dataclasses.replace(base, codec_prob=1.0, codec_bits=(6.0, 6.0)), RATE, 3).example(0.5)
    np.testing.assert_array_equal(a.target, b.target)
    assert np.unique(b.noisy).size <= 2**6 + 1 < np.unique(a.noisy).size
    np.testing.assert_allclose(b.noisy, mu_law_quantise(a.noisy, 6.0))


def test_premixed_steps_repeat_a_fixed_set_of_batches(tiny_corpora):
    fixed = StepBatches(tiny_corpora[0], AugmentConfig(), RATE, 3, 2, 0.25, premixed_steps=3)
    fresh = StepBatches(tiny_corpora[0], AugmentConfig(), RATE, 3, 2, 0.25)
    for step in range(3):
        assert torch.equal(fixed[step][0], fresh[step][0])
        assert torch.equal(fixed[step + 3][0], fixed[step][0])
    assert not torch.equal(fresh[3][0], fresh[0][0])


def test_bad_babble_and_codec_ranges_are_refused():
    with pytest.raises(ConfigError, match="augment.babble_talkers"):
        AugmentConfig(babble_talkers=(0, 2))
    with pytest.raises(ConfigError, match="augment.codec_bits"):
        AugmentConfig(codec_bits=(8.0, 1.0))
