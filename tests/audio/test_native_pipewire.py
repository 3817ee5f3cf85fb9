"""PipeWire capture and playback through libpipewire (``native_pipewire.c``, the C API of ``native_pulse``), on
the private PipeWire server's null sinks: noise looped back sample-exactly on one connection, a missing device
and a lost server reported as faults, and the daemon's choice of library per server."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rtenhance.audio.io import native_pulse
from rtenhance.audio.io.devices import DeviceError, Endpoint
from rtenhance.audio.io.native_pulse import (
    LIBRARY, PIPEWIRE_LIBRARY, NativePulseCapture, NativePulsePlayback, PulseConnection,
)
from rtenhance.daemon import Daemon
from rtenhance.runtime_config import AudioConfig, RuntimeConfig
from tests.audio.daemon_support import aligned_correlation, lag_and_correlation
from tests.audio.pipewire_support import start_pipewire_server
from tests.audio.sound_server import stop_server
from tests.audio.test_native_pulse import _band_noise

pytestmark = pytest.mark.skipif(native_pulse.unavailable_reason(PIPEWIRE_LIBRARY) is not None,
                                reason="native PipeWire library unavailable: "
                                       f"{native_pulse.unavailable_reason(PIPEWIRE_LIBRARY)}")

RUN_S = 4.0
MODEL_RATE = 16000
HOP = 256  # samples moved per step in the loopback test
PREFILL = MODEL_RATE // 50  # 20 ms of silence queued before the noise
AHEAD_S = 0.1  # the loopback test keeps this much in the playback ring
MAX_LOOP_EXTRA_MS = 12.0  # playback -> sink -> monitor -> capture, beyond the prefill: one graph cycle or two
FAULT_WITHIN_S = 3.0


@pytest.fixture
def pipewire_env(pipewire_server, monkeypatch):
    for key, value in pipewire_server.env.items():
        monkeypatch.setenv(key, value)
    return pipewire_server


def _endpoint(name: str) -> Endpoint:
    direction = "input" if name.endswith(".monitor") else "output"
    return Endpoint("pulse", direction, f"pulse:{name}", pulse_name=name, sample_rate=MODEL_RATE)


def _wait_for_fault(*streams: NativePulseCapture | NativePulsePlayback) -> list[str | None]:
    deadline = time.monotonic() + FAULT_WITHIN_S
    while time.monotonic() < deadline and not all(s.fault(FAULT_WITHIN_S * 2) for s in streams):
        time.sleep(0.05)
    return [s.fault(FAULT_WITHIN_S * 2) for s in streams]


def test_both_streams_on_one_connection_loop_noise_back(pipewire_env) -> None:
    connection = PulseConnection(PIPEWIRE_LIBRARY)
    capture = NativePulseCapture(_endpoint("B.monitor"), connection=connection)
    playback = NativePulsePlayback(_endpoint("B"), connection=connection)
    playback.open()
    capture.open()
    noise = _band_noise(RUN_S, MODEL_RATE)
    got = np.zeros(noise.shape[0] + MODEL_RATE // 2, dtype=np.float32)
    written = count = 0
    try:
        playback.start(PREFILL)
        capture.start()
        while count < got.shape[0]:
            while written < noise.shape[0] and playback.ring.available < AHEAD_S * MODEL_RATE:
                written += playback.ring.write(noise[written : written + HOP])
                underflows_while_fed = playback.ring.underflows
            capture.wait_input(HOP, 0.0)
            assert capture.fault(1.0) is None and playback.fault(1.0) is None
            # the depth the jitter buffer reads: the ring less what of the latest fragment has played
            assert 0 <= playback.depth_samples() <= playback.ring.capacity
            count += capture.ring.read_into(got[count : count + HOP])
        latencies = capture.device_latency_s(), playback.device_latency_s()
    finally:
        capture.close()
        playback.close()
    lag, whole = lag_and_correlation(noise, got, max_lag=MODEL_RATE // 2, rate=MODEL_RATE)
    # the graph runs at 48 kHz: the noise comes back through two resamplers; playback starts first, so the
    # capture misses some of the prefill, never more than all of it. Compared window by window: a graph
    # cycle the loaded machine ran late shifts the rest of the loop, which one correlation over the whole run
    # reads as damage (0.57 in a whole run); the samples must still be intact
    aligned = aligned_correlation(noise, got, MODEL_RATE, max_lag_s=0.5)
    assert aligned > 0.9 and 0 < lag <= PREFILL + MAX_LOOP_EXTRA_MS * MODEL_RATE / 1e3, (lag, aligned, whole)
    assert capture.ring.overflows == 0 and playback.ring.overflows == 0
    # the first graph cycles may come before the first capture: underflows only while the ring was starting
    assert underflows_while_fed <= 2, underflows_while_fed
    assert 0.0 < latencies[0] < 0.05 and 0.0 < latencies[1] < 0.05, latencies
    assert capture.fault(1.0) == playback.fault(1.0) == "not open"


def test_a_missing_device_is_a_fault(pipewire_env) -> None:
    capture = NativePulseCapture(_endpoint("no_such_sink.monitor"), connection=PulseConnection(PIPEWIRE_LIBRARY))
    try:
        capture.open()  # the server makes the stream; the session manager finds no target and ends it...
    except DeviceError as refused:  # ...at once, on a slow build (the sanitizers'), before open returns
        assert "no_such_sink.monitor: record stream: " in str(refused), refused
        return
    try:
        capture.start()
        (fault,) = _wait_for_fault(capture)
        assert fault is not None and fault.startswith("input stream: record stream: "), fault
    finally:
        capture.close()


def test_a_lost_server_is_a_fault_not_an_exception(tmp_path, monkeypatch) -> None:
    server = start_pipewire_server(tmp_path / "pipewire")  # its own: the session's must survive
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    connection = PulseConnection(PIPEWIRE_LIBRARY)
    capture = NativePulseCapture(_endpoint("B.monitor"), connection=connection)
    playback = NativePulsePlayback(_endpoint("B"), connection=connection)
    try:
        playback.open()
        capture.open()
        playback.start(PREFILL)
        capture.start()
        time.sleep(0.3)
        assert capture.fault(1.0) is None and playback.fault(1.0) is None
    finally:
        stop_server(server)
    try:
        faults = _wait_for_fault(capture, playback)
        # the session manager or the server's socket goes first: either way the stream is reported gone
        assert all(f is not None and ("connection to the sound server lost" in f or "disconnected by the server" in f)
                   for f in faults), faults
        started = time.monotonic()
        capture.wait_input(capture.ring.capacity, 0.0)  # a failed end wakes its waiter at once
        assert time.monotonic() - started < native_pulse.ARRIVAL_WAIT_US / 1e6
    finally:
        capture.close()
        playback.close()


def test_the_daemon_takes_libpipewire_on_pipewire_and_libpulse_when_asked(pipewire_env) -> None:
    source, sink = _endpoint("A.monitor"), _endpoint("B")
    assert Daemon._pulse_connection(RuntimeConfig(), source, sink).library is PIPEWIRE_LIBRARY
    pulse = RuntimeConfig(audio=AudioConfig(pulse_io="pulse"))
    assert Daemon._pulse_connection(pulse, source, sink).library is LIBRARY


def test_the_daemon_takes_libpulse_on_pulseaudio(pulse_server, monkeypatch) -> None:
    for key, value in pulse_server.env.items():
        monkeypatch.setenv(key, value)
    source, sink = _endpoint("A.monitor"), _endpoint("B")
    assert Daemon._pulse_connection(RuntimeConfig(), source, sink).library is LIBRARY
