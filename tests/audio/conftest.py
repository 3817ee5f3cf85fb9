"""Fixtures for the audio and daemon tests: one private PulseAudio server for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

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
