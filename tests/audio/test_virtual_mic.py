"""The virtual microphone's owner lock and module bookkeeping (the daemon-level tests are in
test_daemon_virtual_mic.py)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rtenhance.audio.io.devices import DeviceError
from rtenhance.audio.io.virtual_mic import VIRTUAL_SINK, VIRTUAL_SOURCE, OwnerLock, VirtualMic
from tests.audio.sound_server import SoundServer
from tests.conftest import REPO

HOLDER = "import sys, time; from pathlib import Path; from rtenhance.audio.io.virtual_mic import OwnerLock; " \
         "OwnerLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(60)"


def hold_lock(path: Path) -> subprocess.Popen[str]:
    """Another process holding the lock at ``path`` (until killed)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_held_lock_is_refused_naming_its_owner_and_a_killed_owner_is_taken_over(tmp_path):
    path = tmp_path / "mic.lock"
    holder = hold_lock(path)
    try:
        with pytest.raises(DeviceError, match=f"another rtenhance \\(pid {holder.pid}\\) owns"):
            OwnerLock(path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = OwnerLock(path)
    assert lock.acquire() == holder.pid  # free again, with the killed owner's PID still written
    assert path.read_text() == f"{os.getpid()}\n"
    lock.release()
    assert path.read_text() == ""
    assert OwnerLock(path).acquire() is None  # a clean release leaves no owner to clean up after


def test_a_link_planted_at_the_lock_path_is_not_followed(tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep\n")
    (tmp_path / "mic.lock").symlink_to(target)
    with pytest.raises(DeviceError, match="cannot open the lock"):
        OwnerLock(tmp_path / "mic.lock").acquire()
    assert target.read_text() == "keep\n"


def own_modules(server: SoundServer) -> list[str]:
    return [line for line in server.module_lines() if VIRTUAL_SINK in line or f"source_name={VIRTUAL_SOURCE}" in line]


def test_create_removes_what_a_killed_owner_left_and_remove_spares_modules_of_a_restarted_server(
        restartable_server, tmp_path, monkeypatch, caplog):
    for key, value in restartable_server.env.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "mic.lock"
    holder = hold_lock(path)
    left = VirtualMic(tmp_path / "unused.lock")
    left.create()  # the modules a killed owner would have left
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    baseline = [line for line in restartable_server.module_lines() if line not in own_modules(restartable_server)]

    mic = VirtualMic(path)
    with caplog.at_level(logging.WARNING):
        mic.create()
    assert f"pid {holder.pid} ended without removing" in caplog.text
    assert len(own_modules(restartable_server)) == 2  # one null sink, one remap source: the leftovers are gone

    restartable_server.restart()  # module indices start again...
    for n in range(4):  # ...so that these take the indices our modules had
        restartable_server.pactl("load-module", "module-null-sink", f"sink_name=other{n}")
    modules = restartable_server.module_lines()
    mic.remove()
    assert restartable_server.module_lines() == modules
    assert path.read_text() == ""

    mic.create()
    mic.restore()
    assert len(own_modules(restartable_server)) == 2
    mic.remove()
    assert restartable_server.module_lines() == modules
    assert [line for line in modules if line not in baseline] == [line for line in modules if "other" in line]
