"""Tiny in-memory corpora and configs for the training tests."""

from __future__ import annotations

import numpy as np

from rtenhance.config import ModelConfig
from rtenhance.train.config import DataConfig, TrainConfig
from rtenhance.train.corpus import Clip, Corpus

RATE = 16000


def _speechlike(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Harmonic tone with a syllable-rate envelope: enough structure for the loss to move."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = rng.uniform(100.0, 220.0)
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2.0, 5.0) * t), 0.0, None)
    return (0.1 * tone * envelope).astype(np.float32)


def make_tiny_corpora() -> tuple[Corpus, Corpus]:
    """(training, validation) corpora of synthetic speech-like tones, white noise and one RIR."""
    rng = np.random.default_rng(0)
    speech = tuple(Clip(f"s{i}.wav", _speechlike(rng, rng.uniform(0.5, 1.5)), f"spk{i % 3}") for i in range(6))
    noise = tuple(Clip(f"n{i}.wav", (0.05 * rng.standard_normal(RATE)).astype(np.float32)) for i in range(3))
    rir = np.zeros(800, dtype=np.float32)
    rir[10] = 1.0
    rir[200:] = 0.05 * rng.standard_normal(600) * np.exp(-np.arange(600) / 150.0)
    rirs = (Clip("r0.wav", rir),)
    return Corpus(speech[:4], noise[:2], rirs), Corpus(speech[4:], noise[2:], rirs)


def tiny_config(runs_dir: str, **overrides: object) -> TrainConfig:
    """A model and run small enough to take a few steps in about a second."""
    base = dict(
        name="tiny",
        runs_dir=runs_dir,
        seed=7,
        batch_size=2,
        max_steps=6,
        log_every=2,
        val_every=4,
        checkpoint_every=100,
        val_pesq=False,
        best_metric="si_sdr",
        threads=1,
        model=ModelConfig(channels=8, dpgrnn_blocks=1),
        data=DataConfig(segment_seconds=1.0, val_mixtures=2, val_seconds=1.0),
    )
    base.update(overrides)
    return TrainConfig(**base)  # type: ignore[arg-type]
