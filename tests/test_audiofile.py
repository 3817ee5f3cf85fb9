"""Signals that arrive during a libsndfile call: delivered after the call, never inside soundfile's callbacks
(where an exception is printed and turned into an unrelated failure)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtenhance.audio_output import AtomicAudioWriter
from rtenhance.audiofile import AudioReader, interruptions_held

RATE = 16000


class Interrupted(Exception):
    """What the test's SIGTERM handler raises."""


@pytest.fixture
def raising_sigterm() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _signal_on_first(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make the first ``os.NAME`` call (inside soundfile's virtual-file callback) raise SIGTERM first."""
    real = getattr(os, name)
    fired: list[bool] = []

    def call(*args: object) -> object:
        if not fired:
            fired.append(True)
            signal.raise_signal(signal.SIGTERM)
        return real(*args)

    monkeypatch.setattr(os, name, call)


def test_held_signal_is_delivered_after_the_block(raising_sigterm):
    reached: list[bool] = []
    with pytest.raises(Interrupted):
        with interruptions_held():
            signal.raise_signal(signal.SIGTERM)
            reached.append(True)
    assert reached == [True]
    with pytest.raises(Interrupted):
        signal.raise_signal(signal.SIGTERM)


def test_sigterm_inside_a_write_callback_loses_nothing(tmp_path: Path, monkeypatch, raising_sigterm):
    samples = np.linspace(-0.5, 0.5, RATE, dtype=np.float32)[:, None]
    writer = AtomicAudioWriter(tmp_path / "out.wav", RATE, 1, "WAV", "FLOAT", overwrite=False)
    _signal_on_first(monkeypatch, "write")
    with pytest.raises(Interrupted):
        writer.write(samples)
    monkeypatch.undo()
    writer.commit()
    np.testing.assert_array_equal(sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)[0], samples)


def test_sigterm_inside_a_read_callback_loses_nothing(tmp_path: Path, monkeypatch, raising_sigterm):
    samples = np.linspace(-0.5, 0.5, RATE, dtype=np.float32)[:, None]
    sf.write(tmp_path / "in.wav", samples, RATE, subtype="FLOAT")
    with AudioReader(tmp_path / "in.wav") as reader:
        blocks = reader.blocks()
        _signal_on_first(monkeypatch, "read")
        with pytest.raises(Interrupted):
            next(blocks)
        monkeypatch.undo()
        assert reader._raw.error is None
