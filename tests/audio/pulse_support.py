"""A private PulseAudio server for the daemon tests, with sinks A and B whose signals share one clock.

Topology: a stereo null sink ``S`` (48 kHz) and two mono remap sinks on it, ``A`` (its left channel) and
``B`` (its right channel). ``A.monitor`` and ``B.monitor`` are capture sources like any null sink's
monitor, and recording ``S.monitor`` gives A's and B's signals in one stream, sample-aligned, so the
delay from A to B is measured exactly. (Recording ``A.monitor`` and ``B.monitor`` as two streams, as
``sox -M`` does, aligns them only as well as the two streams happen to start: the same 7 ms loopback
measured 604, 10 and 8 ms in three runs here.)

The server runs without the default configuration (``-n``), so nothing but these modules is loaded,
as root (``--system=false``) or as a normal user, with its runtime files in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RATE = 48000
START_TIMEOUT_S = 15.0
SINK_A = "A"
SINK_B = "B"
MIX_SINK = "S"
CLOCK_LATENCY_MS = 10


@dataclass
class PulseServer:
    """A running private server; ``env`` points clients (pactl, paplay, PortAudio's pulse device) at it.

    ``clock`` is a recorder on S.monitor asking for 10 ms fragments, kept for the whole session: it
    makes S (and with it A and B) render every few milliseconds, as a sound card does. Without it an
    idle null sink renders in 2 s blocks and a capture stream on its monitor may wait that long.
    """

    root: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    modules: dict[str, int] = field(default_factory=dict)
    clock: subprocess.Popen[bytes] | None = None

    def pactl(self, *args: str) -> str:
        done = subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def load_sink(self, name: str) -> int:
        """(Re)load remap sink A or B on the mixing sink; returns the module index."""
        channel = "front-left" if name == SINK_A else "front-right"
        index = int(self.pactl(
            "load-module", "module-remap-sink", f"sink_name={name}", f"master={MIX_SINK}", "channels=1",
            "channel_map=mono", f"master_channel_map={channel}", "remix=no", f"rate={RATE}",
        ).strip())
        self.modules[name] = index
        return index

    def restart(self) -> None:
        """Stop the server (SIGTERM, as ``pulseaudio --kill`` does) and start a fresh one on the same socket
        with S, A and B again; every module loaded by a client is gone."""
        stop_pulse_server(self)
        fresh = start_pulse_server(self.root)
        self.process, self.modules, self.clock = fresh.process, fresh.modules, fresh.clock

    def unload_sink(self, name: str) -> None:
        self.pactl("unload-module", str(self.modules.pop(name)))

    def module_lines(self) -> list[str]:
        return self.pactl("list", "short", "modules").splitlines()

    def sources(self) -> list[str]:
        return [line.split("\t")[1] for line in self.pactl("list", "short", "sources").splitlines()]

    def play(self, path: Path, sink: str = SINK_A) -> subprocess.Popen[bytes]:
        """Start playing a sound file into a sink (paplay); the caller stops it."""
        return subprocess.Popen(["paplay", "-d", sink, str(path)], env=self.env)

    def record(self, source: str, path: Path, channels: int = 1) -> subprocess.Popen[bytes]:
        """Start recording a source to a float WAV at 48 kHz (parec); stop it with ``stop_recording``."""
        return subprocess.Popen(
            ["parec", "-d", source, "--file-format=wav", "--format=float32le", f"--rate={RATE}",
             f"--channels={channels}", "--latency-msec=20", str(path)],
            env=self.env,
        )


def stop_recording(process: subprocess.Popen[bytes]) -> None:
    """parec finalises its WAV header on SIGINT."""
    process.send_signal(signal.SIGINT)
    process.wait(timeout=10)


def read_mix(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(A's signal, B's signal, rate) from a recording of S.monitor."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data[:, 0], data[:, 1], rate


def start_pulse_server(root: Path) -> PulseServer:
    """Start a private server under ``root`` with S, A and B, and wait until it answers."""
    for tool in ("pulseaudio", "pactl", "paplay", "parec"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian packages pulseaudio and pulseaudio-utils)")
    runtime = root / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    socket_path = runtime / "native"
    env = dict(os.environ)
    env.update(
        PULSE_RUNTIME_PATH=str(runtime),
        PULSE_STATE_PATH=str(root / "state"),
        PULSE_SERVER=f"unix:{socket_path}",
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_RUNTIME_DIR=str(runtime),
    )
    env.pop("PULSE_SINK", None)
    env.pop("PULSE_SOURCE", None)
    command = [
        "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=false", "--system=false",
        "--log-target=stderr", "--log-level=error",
        "-L", f"module-native-protocol-unix socket={socket_path} auth-anonymous=1",
        "-L", f"module-null-sink sink_name={MIX_SINK} channels=2 channel_map=front-left,front-right rate={RATE}",
    ]
    log = open(root / "pulseaudio.log", "wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = PulseServer(root, env, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"pulseaudio exited: {(root / 'pulseaudio.log').read_text()[-2000:]}")
        try:
            server.pactl("info")
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("pulseaudio did not answer within 15 s")
            time.sleep(0.1)
    server.load_sink(SINK_A)
    server.load_sink(SINK_B)
    server.clock = subprocess.Popen(
        ["parec", "-d", f"{MIX_SINK}.monitor", f"--latency-msec={CLOCK_LATENCY_MS}", "--raw"],
        env=env, stdout=subprocess.DEVNULL,
    )
    return server


def stop_pulse_server(server: PulseServer) -> None:
    if server.clock is not None:
        server.clock.terminate()
        server.clock.wait(timeout=10)
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
