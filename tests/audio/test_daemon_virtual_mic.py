"""--output virtual-mic: a source named "rtenhance" that records the enhanced audio, gone after SIGTERM,
back after a sound-server restart, owned by one instance at a time.

The tests that restart or stop the server take ``restartable_server`` (``env``, ``pactl``, ``sources``,
``module_lines``, ``record``, ``play``, ``restart()``), so that another sound server can be given to them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtenhance.audio.io.virtual_mic import VIRTUAL_SINK, VIRTUAL_SOURCE
from rtenhance.daemon import EXIT_VIRTUAL_MIC_LOST
from tests.audio.daemon_support import (
    LEARNING_UNDERFLOWS, TOLERANT_SET, DaemonProcess, aligned_correlation, check_skipped_hops, daemon_env, noisy_speech, weights_path,
    write_wav,
)
from tests.audio.pulse_support import RATE, stop_recording
from tests.audio.sound_server import stop_server

MIN_CORRELATION = 0.9  # the enhanced recording against the high-SNR input it came from, window by window
RECORDER_START_S = 2.5  # the remapped source may deliver its first 2 s block late: parec is running by then
RECOVER_WITHIN_S = 10.0  # retries every 2 s at most; the rest is a loaded machine
GIVE_UP_S = 3.0  # devices.virtual_mic_give_up_s in the test (default 60 s)
TONE_HZ, TONE_PEAK, TONE_S = 440.0, 0.3, 2.0  # what is played into the daemon after the restart
TONE_LEVEL_DB = 3.0  # a 100 ms window carries the tone when its level is this close to the tone's,...
TONE_PEAK_HZ = 10.0  # ...its spectrum peaks this close to the tone (one 10 Hz bin),...
TONE_HEARD_FRACTION = 0.8  # ...and this share of the tone's windows must (the rest: start, end, a splice)
EXIT_MARGIN_S = 10.0  # the exit after giving up: the stop of the streams and model on a loaded machine


def test_virtual_mic_records_enhanced_audio_and_disappears(sound_server, tmp_path):
    modules_before = sound_server.module_lines()
    speech = noisy_speech(4.0, tmp_path, snr_db=15)
    wav = write_wav(tmp_path / "speech.wav", speech)
    daemon = DaemonProcess(
        ["--input", "pulse:A.monitor", "--output", "virtual-mic", "--weights", str(weights_path(tmp_path)),
         "--stats-json", str(tmp_path / "stats.jsonl"), "--set", "stats.interval_s=1"],
        daemon_env(sound_server.env), tmp_path / "daemon.log",
    )
    try:
        daemon.wait_ready()
        assert VIRTUAL_SOURCE in sound_server.sources()
        recorder = sound_server.record(VIRTUAL_SOURCE, tmp_path / "mic.wav")
        time.sleep(RECORDER_START_S)
        start = time.time()
        sound_server.play(wav).wait(timeout=30)
        time.sleep(0.3)
        stop_recording(recorder)
        end = time.time()
        time.sleep(1.1)
    finally:
        code, elapsed = daemon.terminate()
    assert code == 0, daemon.log()[-2000:]
    assert elapsed < 1.0, elapsed
    assert VIRTUAL_SOURCE not in sound_server.sources()
    assert f"{VIRTUAL_SINK}.monitor" not in sound_server.sources()
    assert sound_server.module_lines() == modules_before

    recorded, rate = sf.read(str(tmp_path / "mic.wav"), dtype="float32", always_2d=True)
    from rtenhance.dsp.resample import resample

    reference = resample(speech, 16000, RATE)
    # window by window: the daemon may have dropped or inserted a few ms to hold its latency meanwhile
    corr = aligned_correlation(reference, recorded[:, 0], RATE, max_lag_s=RECORDER_START_S + 1.5)
    print(f"virtual mic correlation {corr:.3f}")
    span = check_skipped_hops(tmp_path / "stats.jsonl", start, end, daemon.log())
    timing = f"{span.underflows} underflows while recording (load {os.getloadavg()[0]:.1f}), correlation {corr:.3f}"
    if span.underflows > LEARNING_UNDERFLOWS:  # reported, not failed (see LEARNING_UNDERFLOWS)
        pytest.xfail(timing)
    assert corr >= MIN_CORRELATION, timing


def start_virtual_mic(server, tmp_path: Path, name: str, *extra: str) -> DaemonProcess:
    """``pulse:A.monitor -> virtual-mic`` on ``server`` with the bundled weights (not yet ready when this
    returns)."""
    return DaemonProcess(
        ["--input", "pulse:A.monitor", "--output", "virtual-mic", *TOLERANT_SET, *extra],
        daemon_env(server.env), tmp_path / f"{name}.log",
    )


def wait_for_source(server, name: str, timeout: float) -> float:
    """Seconds until the server lists source ``name``."""
    start = time.monotonic()
    while name not in server.sources():
        assert time.monotonic() - start < timeout, f"no source {name!r} within {timeout} s"
        time.sleep(0.1)
    return time.monotonic() - start


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    """(N,) float32 sine of ``TONE_HZ`` at ``TONE_PEAK``."""
    t = np.arange(int(seconds * rate)) / rate
    return (TONE_PEAK * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)


def test_virtual_mic_is_recreated_after_a_server_restart_and_audio_resumes(restartable_server, tmp_path):
    server = restartable_server
    wav = write_wav(tmp_path / "tone.wav", tone(TONE_S), RATE)
    # bypass: the microphone carries the input as it is, so that the tone is what must come out
    daemon = start_virtual_mic(server, tmp_path, "daemon", "--set", "enhance.bypass=true")
    try:
        daemon.wait_ready()
        server.restart()
        restarted = time.monotonic()
        wait_for_source(server, VIRTUAL_SOURCE, RECOVER_WITHIN_S)
        daemon.wait_for("resumed", timeout=RECOVER_WITHIN_S)
        recovered_s = time.monotonic() - restarted
        modules = server.module_lines()
        recorder = server.record(VIRTUAL_SOURCE, tmp_path / "mic.wav")
        time.sleep(RECORDER_START_S)
        server.play(wav).wait(timeout=30)
        time.sleep(0.3)
        stop_recording(recorder)
    finally:
        code, _ = daemon.terminate()
    print(f"virtual mic back {recovered_s:.1f} s after the server restart")
    assert code == 0, daemon.log()[-3000:]
    assert "virtual microphone 'rtenhance' recreated" in daemon.log()
    assert [line for line in modules if "rtenhance" in line] != []
    assert all("rtenhance" not in line for line in server.module_lines())
    recorded, rate = sf.read(str(tmp_path / "mic.wav"), dtype="float32", always_2d=True)
    window = rate // 10  # 100 ms
    windows = recorded[: recorded.shape[0] // window * window, 0].reshape(-1, window)  # (N, 100 ms)
    rms = np.sqrt(np.mean(windows**2, axis=1))
    level_ok = np.abs(20 * np.log10(np.maximum(rms, 1e-9) / (TONE_PEAK / np.sqrt(2)))) < TONE_LEVEL_DB
    peak_hz = np.argmax(np.abs(np.fft.rfft(windows, axis=1)), axis=1) * 10.0  # bins of 10 Hz
    carrying = level_ok & (np.abs(peak_hz - TONE_HZ) <= TONE_PEAK_HZ)
    assert carrying.sum() >= TONE_HEARD_FRACTION * TONE_S * 10, (rms, peak_hz)


def test_virtual_mic_gives_up_with_a_non_zero_status_when_the_server_stays_away(restartable_server, tmp_path):
    daemon = start_virtual_mic(restartable_server, tmp_path, "daemon", "--set",
                               f"devices.virtual_mic_give_up_s={GIVE_UP_S:g}")
    daemon.wait_ready()
    stop_server(restartable_server)
    stopped = time.monotonic()
    try:
        code = daemon.process.wait(timeout=GIVE_UP_S + EXIT_MARGIN_S)
    finally:
        daemon.kill()
    elapsed = time.monotonic() - stopped
    assert code == EXIT_VIRTUAL_MIC_LOST, daemon.log()[-3000:]
    assert GIVE_UP_S <= elapsed, elapsed
    assert "could not be recreated" in daemon.log()


def test_second_instance_refuses_and_a_killed_owner_is_replaced(restartable_server, tmp_path):
    server = restartable_server
    modules_before = server.module_lines()
    first = start_virtual_mic(server, tmp_path, "first")
    try:
        first.wait_ready()
        modules = server.module_lines()
        second = subprocess.run(
            [sys.executable, "-m", "rtenhance", "--input", "pulse:A.monitor", "--output", "virtual-mic"],
            env=daemon_env(server.env), capture_output=True, text=True, timeout=60, check=False,
        )
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {first.process.pid}" in lines[0], second.stderr
        assert server.module_lines() == modules  # the first instance's microphone is untouched
        assert VIRTUAL_SOURCE in server.sources()
        assert first.process.poll() is None
    finally:
        first.kill()  # SIGKILL: its modules and its lock file stay behind
    assert VIRTUAL_SOURCE in server.sources()

    third = start_virtual_mic(server, tmp_path, "third")
    try:
        third.wait_ready()
        assert f"pid {first.process.pid} ended without removing" in third.log()
        own = [line for line in server.module_lines() if "rtenhance" in line]
        assert [line.split("\t")[1] for line in own] == ["module-null-sink", "module-remap-source"], own
    finally:
        code, _ = third.terminate()
    assert code == 0, third.log()[-3000:]
    assert server.module_lines() == modules_before
