"""Fixtures for the audio and daemon tests: each test on both servers (the servers are ``tests/conftest.py``'s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audio.pipewire_support import start_pipewire_server
from tests.audio.pulse_support import start_pulse_server
from tests.audio.sound_server import PIPEWIRE, PULSEAUDIO, REMAP, SERVER_KINDS, SoundServer, stop_server


@pytest.fixture(params=SERVER_KINDS)
def sound_server(request: pytest.FixtureRequest) -> Iterator[SoundServer]:
    """Each test once on PulseAudio and once on PipeWire, with the remap topology and the default quantum.

    The test may change the topology (``independent_sinks``) or PipeWire's quantum (``set_quantum``); both
    are checked to be back to the defaults afterwards, so one test cannot skew the next.
    """
    fixture = {PULSEAUDIO: "pulse_server", PIPEWIRE: "pipewire_server"}[request.param]
    server: SoundServer = request.getfixturevalue(fixture)
    yield server
    if server.kind == PIPEWIRE:
        server.set_quantum(0)
    assert server.topology == REMAP, "the test left the independent topology loaded"


@pytest.fixture(params=SERVER_KINDS)
def restartable_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SoundServer]:
    """A private server of this test alone (PulseAudio, then PipeWire), which the test may ``restart()`` or
    stop; it has the ``SoundServer`` interface."""
    start = {PULSEAUDIO: start_pulse_server, PIPEWIRE: start_pipewire_server}[request.param]
    server = start(tmp_path / "server")
    try:
        yield server
    finally:
        stop_server(server)
