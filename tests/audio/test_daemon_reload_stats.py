"""A failed reload or a failing --stats-json file never ends the live audio; a bad --stats-json path stops
the start with one line. The daemon runs a real-time file input here (no sound server needed)."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import soundfile as sf

from tests.audio.daemon_support import DaemonProcess, daemon_env, noisy_speech, weights_path, write_wav
from tests.conftest import REPO

INPUT_SECONDS = 8.0
STATS_INTERVAL = "stats.interval_s=0.2"


def _file_daemon_args(tmp_path, stats) -> list[str]:
    wav = write_wav(tmp_path / "in.wav", noisy_speech(INPUT_SECONDS, tmp_path))
    return ["--input", f"file:{wav}", "--output", f"file:{tmp_path / 'out.wav'}", "--weights",
            str(weights_path(tmp_path)), "--stats-json", str(stats), "--set", STATS_INTERVAL]


def _error_lines(log: str, fragment: str) -> list[str]:
    return [line for line in log.splitlines() if fragment in line]


def test_failed_reloads_keep_the_running_configuration(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("enhance:\n  attenuation_limit_db: 100\n")
    daemon = DaemonProcess([*_file_daemon_args(tmp_path, tmp_path / "stats.jsonl"), "--config", str(config)],
                           daemon_env({}), tmp_path / "daemon.log")
    try:
        daemon.wait_ready()
        for content in (b"enhance:\n  attenuation_limit_db: 6  # r\xe9glage\n", b"\x00\x9f\xff binary",
                        b"enhance:\n  attenuation_limit_db: 6\nenhance:\n  bypass: true\n"):
            config.write_bytes(content)
            before = len(_error_lines(daemon.log(), "reload failed"))
            daemon.signal(signal.SIGHUP)
            deadline = time.monotonic() + 5.0
            while len(_error_lines(daemon.log(), "reload failed")) == before:
                assert daemon.process.poll() is None and time.monotonic() < deadline, daemon.log()[-2000:]
                time.sleep(0.05)
        config.write_text("enhance:\n  attenuation_limit_db: 6\n")
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("configuration reloaded: attenuation limit 6 dB", timeout=5)
        code = daemon.process.wait(timeout=60)
    finally:
        daemon.kill()
    log = daemon.log()
    assert code == 0, log[-2000:]
    failures = _error_lines(log, "reload failed, keeping the running configuration")
    assert len(failures) == 3, log[-3000:]
    assert "not UTF-8 text (byte 0xe9)" in failures[0] and str(config) in failures[0]
    assert "duplicate key 'enhance'" in failures[2]
    assert "Traceback" not in log


@pytest.mark.parametrize("kind", ["symlink", "device"])  # the other kinds: tests/test_stats.py
def test_bad_stats_json_path_stops_the_start_with_one_line(tmp_path, kind):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(victim)
    path = {"missing folder": tmp_path / "no" / "s.jsonl", "symlink": link, "device": "/dev/full",
            "directory": tmp_path}[kind]
    done = subprocess.run([sys.executable, "-m", "rtenhance", *_file_daemon_args(tmp_path, path)],
                          env=daemon_env({}), capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "--stats-json" in lines[0], done.stderr
    assert victim.read_text() == "keep\n"


def test_stats_json_on_a_disk_that_fills_logs_once_and_audio_goes_on(tmp_path):
    """A 16 KiB tmpfs (in a private mount namespace), 12 KiB of it filled: the stats file gets one page,
    then every write fails with ENOSPC while the daemon enhances the rest of the file."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to mount a small tmpfs")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=16k tmpfs {tmp_path}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.decode().strip()}")
    disk = tmp_path / "disk"
    disk.mkdir()
    args = _file_daemon_args(tmp_path, disk / "stats.jsonl")
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "rtenhance", *args])
    script = (f"mount -t tmpfs -o size=16k tmpfs {disk} && head -c 12288 /dev/zero > {disk}/fill && "
              f"cd {shlex.quote(str(REPO))} && exec {command}")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=daemon_env({}), capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    failures = _error_lines(done.stderr, "stats JSON: cannot write")
    assert len(failures) == 1 and "No space left on device" in failures[0], done.stderr[-3000:]
    assert len(_error_lines(done.stderr, "stats: hop")) >= INPUT_SECONDS / 0.2 * 0.8
    assert sf.info(str(tmp_path / "out.wav")).duration >= INPUT_SECONDS - 0.1
