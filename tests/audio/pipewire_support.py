"""A private PipeWire for the daemon tests: pipewire, wireplumber and pipewire-pulse on their own session bus.

Everything lives under one temporary folder: ``XDG_RUNTIME_DIR`` (PipeWire's socket ``pipewire-0`` and
pipewire-pulse's ``pulse/native``), configuration and state. WirePlumber (the session manager that links
streams to sinks) needs a D-Bus session bus, so a private ``dbus-daemon --session`` is started first and
ended last. Clients reach the server through ``PULSE_SERVER`` (libpulse: pactl, paplay, parec, rtenhance)
or the PipeWire socket in ``XDG_RUNTIME_DIR`` (pw-metadata). Sinks and interface: see sound_server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.audio.sound_server import PIPEWIRE, SoundServer, client_env, stop_server, wait_until_answers

START_TIMEOUT_S = 20.0
TOOLS = {"pipewire": "pipewire", "wireplumber": "wireplumber", "pipewire-pulse": "pipewire-pulse",
         "dbus-daemon": "dbus", "pw-metadata": "pipewire-bin", "pactl": "pulseaudio-utils",
         "paplay": "pulseaudio-utils", "parec": "pulseaudio-utils"}
IDLE_CPU_SHARE = 0.05  # the server's processes together use less CPU than this over IDLE_SAMPLE_S: started
IDLE_SAMPLE_S = 0.5
SESSION_MANAGER_READY = 'Found "default" metadata'  # pw-metadata's answer once WirePlumber has set up


def start_pipewire_server(root: Path) -> SoundServer:
    """Start a private PipeWire under ``root`` with S, A and B; wait until WirePlumber and pipewire-pulse answer.

    Skips the calling test when a program is missing; fails with the server logs when one exits or
    does not answer within START_TIMEOUT_S.
    """
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian package {package}; scripts/setup.sh installs it)")
    runtime = root / "run"
    runtime.mkdir(parents=True, mode=0o700, exist_ok=True)
    (runtime / "bus").unlink(missing_ok=True)  # a stopped server's session bus socket
    env = client_env(root, runtime, runtime / "pulse" / "native")
    bus = subprocess.run(
        ["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1",
         f"--address=unix:path={runtime / 'bus'}"],
        env=env, capture_output=True, text=True, timeout=10,
    )
    if bus.returncode != 0:
        pytest.fail(f"dbus-daemon --session failed: {bus.stderr.strip()}")
    address, pid = bus.stdout.split()[:2]
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    server = SoundServer(PIPEWIRE, root, env, [], [], forked_pids=[int(pid)], restarter=_restart_pulse_server)
    _start(server, "pipewire")
    _wait_for(server, lambda: (runtime / "pipewire-0").exists(), "the socket pipewire-0")
    _start(server, "wireplumber")
    _wait_for(server, lambda: SESSION_MANAGER_READY in _metadata(env, "default"), "WirePlumber's default metadata")
    _start(server, "pipewire-pulse")
    wait_until_answers(server, START_TIMEOUT_S)
    server.load_topology()
    _wait_until_idle(server)
    return server


def _restart_pulse_server(server: SoundServer) -> None:
    """Restart pipewire-pulse (as an update or ``systemctl --user restart pipewire-pulse`` does): the modules
    loaded through it go with it; the test topology is loaded again. A server stopped as a whole starts anew."""
    if all(p.poll() is not None for p in server.processes):
        fresh = start_pipewire_server(server.root)
        server.env, server.processes, server.logs = fresh.env, fresh.processes, fresh.logs
        server.forked_pids, server.modules, server.topology = fresh.forked_pids, fresh.modules, fresh.topology
        return
    index = next(i for i, p in enumerate(server.processes) if p.args[0] == "pipewire-pulse")
    old = server.processes.pop(index)
    server.logs.pop(index)
    old.terminate()
    try:
        old.wait(timeout=10)
    except subprocess.TimeoutExpired:
        old.kill()
        old.wait()
    server.modules.clear()
    _start(server, "pipewire-pulse")
    wait_until_answers(server, START_TIMEOUT_S)
    server.load_topology()


def _start(server: SoundServer, program: str) -> None:
    log = server.root / f"{program}.log"
    with open(log, "wb") as out:
        server.processes.append(subprocess.Popen([program], env=server.env, stdout=out, stderr=subprocess.STDOUT))
    server.logs.append(log)


def _wait_until_idle(server: SoundServer) -> None:
    """Wait until the server's processes have finished starting (WirePlumber keeps working for seconds after it
    answers), as a desktop's server has long before a user starts rtenhance; at most START_TIMEOUT_S."""
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu_s() -> float:
        total = 0.0
        for process in server.processes:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks  # utime and stime
        return total

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        before = cpu_s()
        time.sleep(IDLE_SAMPLE_S)
        if cpu_s() - before < IDLE_CPU_SHARE * IDLE_SAMPLE_S:
            return


def _metadata(env: dict[str, str], name: str) -> str:
    try:
        done = subprocess.run(["pw-metadata", "-n", name], env=env, capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return ""
    return done.stdout


def _wait_for(server: SoundServer, ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        exited = [p for p in server.processes if p.poll() is not None]
        if exited or time.monotonic() > deadline:
            stop_server(server)
            cause = f"{exited[0].args[0]} exited with {exited[0].returncode}" if exited else "timed out"
            pytest.fail(f"pipewire: no {what} ({cause}):\n{server.log_tail()}")
        time.sleep(0.1)
