"""The systemd side: the unit verifies, and the daemon speaks sd_notify on a datagram socket."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.audio.daemon_support import DaemonProcess, daemon_env, weights_path
from tests.conftest import REPO

UNIT = REPO / "systemd" / "rtenhance.service"
WATCHDOG_USEC = 1_000_000


def verify(unit) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_verifies():
    done = verify(UNIT)
    assert done.returncode == 0, done.stderr
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "After=pipewire.service pipewire-pulse.service",
                 "Wants=pipewire.service pipewire-pulse.service", "ExecReload=/bin/kill -HUP $MAINPID", "RestartPreventExitStatus=2"):
        assert line in text, line


def test_service_install_writes_unit_and_config(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "rtenhance", "service", "install"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    unit = tmp_path / "systemd" / "user" / "rtenhance.service"
    assert f"ExecStart={sys.executable} -m rtenhance run" in unit.read_text()
    assert (tmp_path / "rtenhance" / "config.yaml").read_text() == (REPO / "config" / "rtenhance.yaml").read_text()
    assert "systemctl --user enable --now rtenhance" in done.stdout
    again = subprocess.run([sys.executable, "-m", "rtenhance", "service", "install"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 2 and "--force" in again.stderr
    if shutil.which("systemd-analyze") is not None:
        assert verify(unit).returncode == 0


def test_notify_socket_receives_ready_status_watchdog(pulse_server, tmp_path):
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(0.2)
    env = daemon_env(pulse_server.env, NOTIFY_SOCKET=address, WATCHDOG_USEC=str(WATCHDOG_USEC))
    daemon = DaemonProcess(
        ["--input", "pulse:A.monitor", "--output", "pulse:B", "--weights", str(weights_path(tmp_path)),
         "--set", "stats.interval_s=0.5"], env, tmp_path / "daemon.log",
    )
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                messages.append(listener.recv(4096).decode())
            except socket.timeout:
                pass
            text = "\n".join(messages)
            if "READY=1" in text and "WATCHDOG=1" in text and "STATUS=hop p50" in text:
                break
    finally:
        code, _ = daemon.terminate()
        try:
            while True:
                messages.append(listener.recv(4096).decode())
        except socket.timeout:
            listener.close()
    text = "\n".join(messages)
    assert code == 0
    assert "READY=1" in text and "WATCHDOG=1" in text and "STATUS=hop p50" in text and "STOPPING=1" in text, text
