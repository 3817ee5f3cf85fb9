"""Device loss and return, and a clean stop on SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
import soundfile as sf

from tests.audio.daemon_support import (
    DaemonProcess, check_skipped_hops, daemon_env, noisy_speech, read_json_lines, weights_path, write_wav,
)
from tests.audio.pulse_support import SINK_A, stop_recording

RESUME_WITHIN_S = 5.0
AUDIBLE = 1e-3


def start_daemon(sound_server, tmp_path) -> DaemonProcess:
    daemon = DaemonProcess(
        ["--input", "pulse:A.monitor", "--output", "pulse:B", "--weights", str(weights_path(tmp_path)),
         "--set", "stats.interval_s=1", "--stats-json", str(tmp_path / "stats.jsonl")],
        daemon_env(sound_server.env), tmp_path / "daemon.log",
    )
    daemon.wait_ready()
    return daemon


def test_device_loss_is_logged_survived_and_resumed(sound_server, tmp_path):
    wav = write_wav(tmp_path / "speech.wav", noisy_speech(8.0, tmp_path))
    daemon = start_daemon(sound_server, tmp_path)
    try:
        time.sleep(1.0)
        sound_server.unload_sink(SINK_A)
        daemon.wait_for("audio device lost", timeout=5)
        time.sleep(1.5)
        assert daemon.process.poll() is None, daemon.log()[-2000:]
        sound_server.load_sink(SINK_A)
        returned, returned_wall = time.monotonic(), time.time()
        recorder = sound_server.record("B.monitor", tmp_path / "after.wav")
        player = sound_server.play(wav)
        time.sleep(RESUME_WITHIN_S + 1.0)
        stop_recording(recorder)
        player.terminate()
        player.wait()
        played_until = time.time()
        daemon.wait_for("resumed", timeout=1)
        time.sleep(1.1)
    finally:
        if SINK_A not in sound_server.modules:
            sound_server.load_sink(SINK_A)
        code, _ = daemon.terminate()
    assert code == 0
    log = daemon.log()
    assert log.count("audio device lost") == 1, log[-3000:]
    recorded, rate = sf.read(str(tmp_path / "after.wav"), dtype="float32", always_2d=True)
    audible = np.flatnonzero(np.abs(recorded[:, 0]) > AUDIBLE)
    assert audible.size, log[-3000:]
    assert audible[0] / rate <= RESUME_WITHIN_S, (audible[0] / rate, time.monotonic() - returned, log[-3000:])
    reconnecting = [float(r["time"]) for r in read_json_lines(tmp_path / "stats.jsonl") if r["mode"] == "reconnecting"]
    check_skipped_hops(tmp_path / "stats.jsonl", max(reconnecting, default=returned_wall) + 1.0, played_until, log)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_0_within_a_second_leaving_nothing(sound_server, tmp_path, signum):
    modules_before = sound_server.module_lines()
    daemon = start_daemon(sound_server, tmp_path)
    time.sleep(1.0)
    start = time.monotonic()
    daemon.signal(signum)
    code = daemon.process.wait(timeout=10)
    elapsed = time.monotonic() - start
    daemon.kill()
    assert code == 0, daemon.log()[-2000:]
    assert elapsed < 1.0, elapsed
    assert sound_server.module_lines() == modules_before
    clients = sound_server.pactl("list", "short", "clients")
    assert "python" not in clients.lower(), clients
