"""Fixtures for the audio and daemon tests: one private PulseAudio server for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audio.pulse_support import PulseServer, start_pulse_server, stop_pulse_server


@pytest.fixture(scope="session")
def pulse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """A private PulseAudio server with sinks A and B (see pulse_support); stopped after the session."""
    server = start_pulse_server(tmp_path_factory.mktemp("pulse"))
    try:
        yield server
    finally:
        stop_pulse_server(server)


@pytest.fixture
def restartable_server(tmp_path: Path) -> Iterator[PulseServer]:
    """A private server of this test alone, which the test may restart (``restart()``) or stop; it has
    ``env``, ``pactl``, ``sources``, ``module_lines``, ``play``, ``record``, ``load_sink``/``unload_sink``."""
    server = start_pulse_server(tmp_path / "server")
    try:
        yield server
    finally:
        stop_pulse_server(server)
