"""A private PulseAudio server for the daemon tests (see sound_server for its sinks and interface).

The server runs without the default configuration (``-n``), so nothing but these modules is loaded,
as root (``--system=false``) or as a normal user, with its runtime files in a temporary folder.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.audio.sound_server import (
    MIX_SINK, PULSEAUDIO, RATE, SINK_A, SINK_B, SoundServer, client_env, stop_recording, stop_server,
    wait_until_answers,
)

START_TIMEOUT_S = 15.0

__all__ = ["MIX_SINK", "RATE", "SINK_A", "SINK_B", "read_mix", "start_pulse_server", "stop_pulse_server",
           "stop_recording"]


def read_mix(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(A's signal, B's signal, rate) from a recording of S.monitor."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data[:, 0], data[:, 1], rate


def start_pulse_server(root: Path) -> SoundServer:
    """Start a private server under ``root`` with S, A and B, and wait until it answers."""
    for tool in ("pulseaudio", "pactl", "paplay", "parec"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian packages pulseaudio and pulseaudio-utils)")
    runtime = root / "run"
    runtime.mkdir(parents=True, mode=0o700, exist_ok=True)
    socket_path = runtime / "native"
    env = client_env(root, runtime, socket_path)
    env.update(PULSE_RUNTIME_PATH=str(runtime), PULSE_STATE_PATH=str(root / "state"))
    command = [
        "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=false", "--system=false",
        "--log-target=stderr", "--log-level=error",
        "-L", f"module-native-protocol-unix socket={socket_path} auth-anonymous=1",
    ]
    log = root / "pulseaudio.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = SoundServer(PULSEAUDIO, root, env, [process], [log], restarter=_restart)
    wait_until_answers(server, START_TIMEOUT_S)
    server.load_topology()
    return server


def _restart(server: SoundServer) -> None:
    """Stop the server (SIGTERM, as ``pulseaudio --kill`` does) and start a fresh one on the same socket."""
    stop_server(server)
    fresh = start_pulse_server(server.root)
    server.processes, server.logs, server.modules = fresh.processes, fresh.logs, fresh.modules
    server.clock, server.topology = fresh.clock, fresh.topology


def stop_pulse_server(server: SoundServer) -> None:
    stop_server(server)
