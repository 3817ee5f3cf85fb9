"""What every private test sound server offers (PulseAudio or PipeWire), spoken to through libpulse tools.

Both servers speak the PulseAudio protocol (PipeWire through ``pipewire-pulse``), so ``pactl``, ``paplay``,
``parec`` and rtenhance's libpulse streams reach either one through ``PULSE_SERVER`` in ``env``.

Two sink topologies, both with sinks named A and B so that ``--input pulse:A.monitor --output pulse:B`` works
on either:

- ``remap`` (the default): a stereo null sink ``S`` (48 kHz) and two mono remap sinks on it, ``A`` (its left
  channel) and ``B`` (its right channel). Recording ``S.monitor`` gives A's and B's signals in one stream,
  sample-aligned, so the delay from A to B is measured exactly. (Recording ``A.monitor`` and ``B.monitor`` as
  two streams aligns them only as well as the two streams happen to start: the same 7 ms loopback measured
  604, 10 and 8 ms in three runs here.)
- ``independent``: A and B are two separate mono null sinks, each on its own clock, as a microphone and a
  sound card are (both still run on the system clock: a real clock mismatch needs a source fed on its
  own clock, see ``clocked_source.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

RATE = 48000
SINK_A = "A"
SINK_B = "B"
MIX_SINK = "S"
PACTL_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
READY_POLL_S = 0.1
RECORD_LATENCY_MS = 20
PULSEAUDIO = "pulseaudio"
PIPEWIRE = "pipewire"
SERVER_KINDS = (PULSEAUDIO, PIPEWIRE)
REMAP = "remap"
INDEPENDENT = "independent"


@dataclass
class SoundServer:
    """A running private server; ``env`` points clients (pactl, paplay, PortAudio's pulse device) at it.

    Attributes:
        kind: ``"pulseaudio"`` or ``"pipewire"``.
        root: its temporary folder (runtime files and one log file per process).
        env: the environment for its clients.
        processes: the server's processes in start order (stopped in reverse); ``logs`` names their logs.
        forked_pids: helpers that forked away from us (the D-Bus session bus), ended after the processes.
        modules: module index of each sink this object loaded, by sink name.
        topology: ``"remap"`` or ``"independent"`` (see the module docstring).
        clock: a recorder kept on a monitor so that PulseAudio's null sinks render every few milliseconds,
            as a sound card does (an idle PulseAudio null sink renders in 2 s blocks, and a capture stream on
            its monitor may wait that long); None on PipeWire, whose null sinks are timer-driven anyway.
    """

    kind: str
    root: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]
    forked_pids: list[int] = field(default_factory=list)
    modules: dict[str, int] = field(default_factory=dict)
    topology: str = REMAP
    clock: subprocess.Popen[bytes] | None = None
    restarter: Callable[[SoundServer], None] | None = None

    def restart(self) -> None:
        """Restart the server as an update does (PulseAudio: the whole server; PipeWire: pipewire-pulse, as
        ``systemctl --user restart pipewire-pulse`` does); every module a client loaded is gone, and the
        test topology is loaded again."""
        assert self.restarter is not None, f"{self.kind} cannot be restarted"
        self.restarter(self)

    def pactl(self, *args: str) -> str:
        done = subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=PACTL_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)} on {self.kind}: {done.stderr.strip()}")
        return done.stdout

    def load_module(self, *args: str) -> int:
        return int(self.pactl("load-module", *args).strip())

    def load_sink(self, name: str) -> int:
        """(Re)load sink A or B of the current topology; returns the module index."""
        if self.topology == REMAP:
            channel = "front-left" if name == SINK_A else "front-right"
            index = self.load_module(
                "module-remap-sink", f"sink_name={name}", f"master={MIX_SINK}", "channels=1", "channel_map=mono",
                f"master_channel_map={channel}", "remix=no", f"rate={RATE}",
            )
        else:
            index = self.load_module("module-null-sink", f"sink_name={name}", "channels=1", "channel_map=mono",
                                     f"rate={RATE}")
        self.modules[name] = index
        return index

    def unload_sink(self, name: str) -> None:
        self.pactl("unload-module", str(self.modules.pop(name)))

    def load_topology(self, clock: bool = True) -> None:
        """Load the mixing sink (remap topology, when absent), A and B, and (``clock``) PulseAudio's clock."""
        if self.topology == REMAP and MIX_SINK not in self.modules:
            self.modules[MIX_SINK] = self.load_module(
                "module-null-sink", f"sink_name={MIX_SINK}", "channels=2", "channel_map=front-left,front-right",
                f"rate={RATE}",
            )
        self.load_sink(SINK_A)
        self.load_sink(SINK_B)
        self.wait_for_sources([f"{SINK_A}.monitor", f"{SINK_B}.monitor"])
        if clock and self.kind == PULSEAUDIO:
            monitor = f"{MIX_SINK}.monitor" if self.topology == REMAP else f"{SINK_A}.monitor"
            self.clock = subprocess.Popen(
                ["parec", "-d", monitor, "--latency-msec=10", "--raw"], env=self.env, stdout=subprocess.DEVNULL,
            )

    def unload_topology(self) -> None:
        """Unload A, B (and S) and stop the clock."""
        self._stop_clock()
        for name in (SINK_A, SINK_B, MIX_SINK):
            if name in self.modules:
                self.unload_sink(name)

    @contextlib.contextmanager
    def independent_sinks(self, clock: bool = False) -> Iterator[None]:
        """A and B as two independent null sinks for the block, then the remap topology.

        Args:
            clock: keep PulseAudio's 10 ms recorder on A.monitor (no effect on PipeWire); without it the
                producer's and the daemon's own buffer sizes decide when A renders, as on a desktop.
        """
        self.unload_topology()
        self.topology = INDEPENDENT
        try:
            self.load_topology(clock)
            yield
        finally:
            self.unload_topology()
            self.topology = REMAP
            self.load_topology()

    def set_quantum(self, frames: int) -> None:
        """Force PipeWire's graph period to ``frames`` (0 restores the default); PulseAudio has no graph period."""
        if self.kind != PIPEWIRE:
            raise ValueError("the graph quantum exists only on PipeWire")
        done = subprocess.run(["pw-metadata", "-n", "settings", "0", "clock.force-quantum", str(frames)],
                              env=self.env, capture_output=True, text=True, timeout=PACTL_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"pw-metadata clock.force-quantum {frames}: {done.stderr.strip()}")

    def module_lines(self) -> list[str]:
        return self.pactl("list", "short", "modules").splitlines()

    def sources(self) -> list[str]:
        return [line.split("\t")[1] for line in self.pactl("list", "short", "sources").splitlines()]

    def wait_for_sources(self, names: list[str], timeout_s: float = 5.0) -> None:
        """Wait until every source in ``names`` is listed (PipeWire creates nodes asynchronously)."""
        deadline = time.monotonic() + timeout_s
        while not set(names) <= set(self.sources()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind}: sources {names} missing after {timeout_s} s: {self.sources()}")
            time.sleep(READY_POLL_S)

    def play(self, path: Path, sink: str = SINK_A, latency_ms: int | None = None) -> subprocess.Popen[bytes]:
        """Start playing a sound file into a sink (paplay; its default buffering unless ``latency_ms``)."""
        latency = [] if latency_ms is None else [f"--latency-msec={latency_ms}"]
        return subprocess.Popen(["paplay", "-d", sink, *latency, str(path)], env=self.env)

    def record(self, source: str, path: Path, channels: int = 1,
               latency_ms: int = RECORD_LATENCY_MS) -> subprocess.Popen[bytes]:
        """Start recording a source to a float WAV at 48 kHz (parec); stop it with ``stop_recording``."""
        return subprocess.Popen(
            ["parec", "-d", source, "--file-format=wav", "--format=float32le", f"--rate={RATE}",
             f"--channels={channels}", f"--latency-msec={latency_ms}", str(path)],
            env=self.env,
        )

    def log_tail(self, chars: int = 2000) -> str:
        """The end of every server process's log, for failure messages."""
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}" for log in self.logs
                         if log.is_file())

    def _stop_clock(self) -> None:
        if self.clock is not None:
            self.clock.terminate()
            self.clock.wait(timeout=STOP_TIMEOUT_S)
            self.clock = None


def stop_recording(process: subprocess.Popen[bytes]) -> None:
    """parec finalises its WAV header on SIGINT."""
    process.send_signal(signal.SIGINT)
    process.wait(timeout=STOP_TIMEOUT_S)


def client_env(root: Path, runtime: Path, socket_path: Path) -> dict[str, str]:
    """The environment of a private server and its clients: runtime, config and state under ``root``."""
    env = dict(os.environ)
    env.update(
        PULSE_SERVER=f"unix:{socket_path}",
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_STATE_HOME=str(root / "state"),
        XDG_RUNTIME_DIR=str(runtime),
    )
    for name in ("PULSE_SINK", "PULSE_SOURCE", "PIPEWIRE_REMOTE", "PIPEWIRE_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"):
        env.pop(name, None)
    return env


def wait_until_answers(server: SoundServer, timeout_s: float) -> None:
    """Poll ``pactl info`` until it answers; fail with the server logs if a process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        for process in server.processes:
            if process.poll() is not None:
                stop_server(server)
                pytest.fail(f"{server.kind}: {process.args[0]} exited with {process.returncode}:\n{server.log_tail()}")
        try:
            server.pactl("info")
            return
        except (RuntimeError, subprocess.TimeoutExpired):
            if time.monotonic() > deadline:
                stop_server(server)
                pytest.fail(f"{server.kind} did not answer pactl within {timeout_s} s:\n{server.log_tail()}")
            time.sleep(READY_POLL_S)


def stop_server(server: SoundServer) -> None:
    """Stop the clock and every server process (last started first); kill what ignores SIGTERM."""
    server._stop_clock()
    for process in reversed(server.processes):
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pid in server.forked_pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
