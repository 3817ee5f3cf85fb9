"""Graph cycles PipeWire runs without the capture stream (``missed_samples`` in ``native_pipewire.c``): the
stream's data thread is held off its CPU for STALL_S, as a loaded machine does, while the private server's
graph, the producer and the rest of the machine go on. The missed span is written as silence, so that what
follows keeps its place in time: the capture's delay behind a recording of the same monitor (parec, which the
stall leaves alone) is the same after the stall as before it, and the span is counted (``gap_samples``).
Without that, the rest of the capture would come out STALL_S early. Against the recording, not the noise file:
a graph cycle the producer itself misses on a busy machine shifts what the monitor carries, for both alike
(a whole run once read such a shift as a 5.3 ms step of the capture's). A cycle the recorder or our capture
misses by itself away from the stall (the machine paused) may still shift one against the other by a cycle:
the delay is read as the median over short windows, and may move by one cycle, where the stall unhandled
moves it by all of STALL_S (58.7 ms, measured with the silence taken out)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from rtenhance.audio.io import native_pulse
from rtenhance.audio.io.devices import Endpoint
from rtenhance.audio.io.native_pulse import PIPEWIRE_LIBRARY, NativePulseCapture, PulseConnection
from tests.audio.daemon_support import lag_and_correlation, write_wav
from tests.audio.pipewire_support import start_pipewire_server
from tests.audio.sound_server import RATE, SINK_A, SoundServer, stop_recording, stop_server
from tests.audio.test_native_pulse import _band_noise

pytestmark = pytest.mark.skipif(native_pulse.unavailable_reason(PIPEWIRE_LIBRARY) is not None,
                                reason="native PipeWire library unavailable: "
                                       f"{native_pulse.unavailable_reason(PIPEWIRE_LIBRARY)}")

MODEL_RATE = 16000
HOP = 256  # samples moved per step
RUN_S = 4.0  # noise played; the stall comes at STALL_AT_S
STALL_AT_S = 2.0
STALL_S = 0.06  # about 11 graph cycles at PipeWire's default quantum
STALL_PRIORITY = 50  # SCHED_FIFO priority of the thread that holds the CPU: above the data thread's (10)
SEGMENT_S = 1.0  # the delay is read on this much noise before the stall and as much after it
GUARD_S = 0.5  # ... this far from the stall
WINDOW_S = 0.5  # ... as the median over the windows this long, every WINDOW_STEP_S of each segment, that match the
WINDOW_STEP_S = 0.25  # recording (two at least; GCC-PHAT over MAX_LAG_S finds no peak on 0.25 s windows)
MIN_WINDOWS = 2
MIN_CORRELATION = 0.9  # a window matches at this normalised correlation
CYCLE_MS = 1e3 * 256 / RATE  # one graph cycle at the quantum this server runs (STALL_S is about 11 of them)
RECORDER_START_S = 5.0  # the recording has audio within this long, and the capture starts after it has
RECORDING_STARTED_BYTES = 4096  # a WAV this long holds audio past its header
MAX_LAG_S = 1.0  # the recording's lead over the capture, at most
SAME_DELAY_MS = 1.5  # the delay after the stall matches the one before within this (a few samples of resampling)


@pytest.fixture
def pipewire_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoundServer]:
    """A PipeWire of the test's own, at its default quantum (the session's server may be left at another by
    the tests before, and its graph holds their streams)."""
    server = start_pipewire_server(tmp_path / "pipewire")
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    try:
        yield server
    finally:
        stop_server(server)


def _endpoint(name: str) -> Endpoint:
    direction = "input" if name.endswith(".monitor") else "output"
    return Endpoint("pulse", direction, f"pulse:{name}", pulse_name=name, sample_rate=MODEL_RATE)


HOLD_CPU = """
import os, sys, time
cpu, seconds, priority = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
os.sched_setaffinity(0, {cpu})
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
except PermissionError:
    sys.exit(3)
print("holding", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    pass
"""
REFUSED = 3


class CpuHold:
    """Holds one CPU for ``seconds`` with a real-time busy process, in the background (``wait`` for the end),
    with the thread ``thread_id`` pinned to that CPU and every thread of the processes ``others`` (the
    server and the producer: they must go on) pinned off it. Skips the test when the machine has a
    single CPU or real-time scheduling is not allowed."""

    def __init__(self, thread_id: int, seconds: float, others: list[int]) -> None:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            pytest.skip("needs two CPUs: the sound server keeps running while the stream's thread is held")
        held, rest = cpus[-1], set(cpus[:-1])
        self.saved = {tid: os.sched_getaffinity(tid) for tid in [thread_id, *_threads(others)]}
        for tid in self.saved:
            os.sched_setaffinity(tid, {held} if tid == thread_id else rest)
        self.holder = subprocess.Popen([sys.executable, "-c", HOLD_CPU, str(held), str(seconds), str(STALL_PRIORITY)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self) -> None:
        out, err = self.holder.communicate(timeout=10)
        for tid, cpus in self.saved.items():
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(tid, cpus)
        if self.holder.returncode == REFUSED:
            pytest.skip("needs real-time scheduling (SCHED_FIFO) to hold a CPU")
        assert self.holder.returncode == 0 and "holding" in out, err


def _threads(pids: list[int]) -> list[int]:
    """Every thread of the processes ``pids`` (those still running)."""
    return [int(task.name) for pid in pids for task in Path(f"/proc/{pid}/task").glob("*")]


def _server_pids(server: SoundServer) -> list[int]:
    return [process.pid for process in server.processes] + list(server.forked_pids)


def _wait_for_audio(path: Path) -> None:
    """Until parec's WAV at ``path`` holds audio past its header (at most RECORDER_START_S)."""
    deadline = time.monotonic() + RECORDER_START_S
    while not (path.is_file() and path.stat().st_size > RECORDING_STARTED_BYTES):
        assert time.monotonic() < deadline, f"parec wrote no audio to {path} within {RECORDER_START_S} s"
        time.sleep(0.01)


def _delays_ms(got: np.ndarray, recording: np.ndarray, stall_at: int) -> tuple[list[float], list[float]]:
    """Delays of ``recording`` behind ``got`` (both at MODEL_RATE), in ms, on the windows that match
    (MIN_CORRELATION) within SEGMENT_S of ``got`` ending GUARD_S before its sample ``stall_at``, and within as
    much starting GUARD_S after it: (before, after)."""
    segment, guard, max_lag = int(SEGMENT_S * MODEL_RATE), int(GUARD_S * MODEL_RATE), int(MAX_LAG_S * MODEL_RATE)
    window, step = int(WINDOW_S * MODEL_RATE), int(WINDOW_STEP_S * MODEL_RATE)
    sides: list[list[float]] = []
    for start in (stall_at - guard - segment, stall_at + guard):
        delays = []
        for first in range(start, start + segment - window + 1, step):
            lag, correlation = lag_and_correlation(got[first : first + window],
                                                   recording[first : first + window + max_lag], max_lag, MODEL_RATE)
            if correlation >= MIN_CORRELATION:
                delays.append(1e3 * lag / MODEL_RATE)
        sides.append(delays)
    return sides[0], sides[1]


def test_a_capture_stream_held_off_its_cpu_keeps_its_time_line(pipewire_env, tmp_path: Path) -> None:
    noise = _band_noise(RUN_S, MODEL_RATE)
    connection = PulseConnection(PIPEWIRE_LIBRARY)
    capture = NativePulseCapture(_endpoint(f"{SINK_A}.monitor"), connection=connection)
    capture.open()
    got = np.zeros(int((RUN_S + 1.0) * MODEL_RATE), dtype=np.float32)
    count, holder = 0, None
    recorder = pipewire_env.record(f"{SINK_A}.monitor", tmp_path / "recording.wav", latency_ms=10)
    try:
        _wait_for_audio(tmp_path / "recording.wav")
        capture.start()
        player = pipewire_env.play(write_wav(tmp_path / "noise.wav", noise), SINK_A, latency_ms=10)
        started = time.monotonic()
        while count + HOP <= got.shape[0] and player.poll() is None:
            if holder is None and time.monotonic() - started > STALL_AT_S:
                holder = CpuHold(connection.thread_id, STALL_S,
                                 [*_server_pids(pipewire_env), player.pid, recorder.pid])
                stall_at = count
            capture.wait_input(HOP, 0.0)
            count += capture.ring.read_into(got[count : count + HOP])
        player.wait(timeout=10)
        holder.wait()
        gap_s = capture.gap_samples / MODEL_RATE
    finally:
        capture.close()
        stop_recording(recorder)
    assert holder is not None
    recorded, rate = sf.read(tmp_path / "recording.wav", dtype="float32")
    assert rate == RATE
    recording = resample_poly(recorded, MODEL_RATE, RATE).astype(np.float32)
    before, after = _delays_ms(got[:count], recording, stall_at)
    assert len(before) >= MIN_WINDOWS and len(after) >= MIN_WINDOWS, (before, after, gap_s)
    shift = float(np.median(after) - np.median(before))
    assert abs(shift) <= SAME_DELAY_MS or abs(abs(shift) - CYCLE_MS) <= SAME_DELAY_MS, (before, after, gap_s)
    # at least the stall was counted (a slow build, such as the sanitizers', misses more cycles around it; that
    # the delay held shows none was counted that did not happen)
    assert gap_s >= 0.5 * STALL_S, gap_s
