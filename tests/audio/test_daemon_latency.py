"""Latency on PulseAudio and PipeWire, measured: (a) the server's loopback, (b) a minimal sounddevice passthrough, (c) rtenhance.

All three carry noisy speech from sink A's monitor to sink B; S.monitor holds A's and B's signals in one
recording (see sound_server), and the delay is read off by cross-correlation in windows.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.audio.daemon_support import (
    DaemonProcess, check_skipped, daemon_env, noisy_speech, read_json_lines, weights_path, windowed_lags_ms,
    write_wav,
)
from tests.audio.live_metrics import StatsSummary, summarise_stats
from tests.audio.pulse_support import MIX_SINK, read_mix, stop_recording
from tests.audio.sound_server import SoundServer

WINDOW_S = 2.5
SNR_DB = 15  # high-SNR speech: the enhanced output still correlates with the input in every window
BASELINE_S = 9.0  # the baselines' speech
BASELINE_WINDOW_S = 1.0  # their windows: a glitch of the test's own passthrough spoils one of about eight (with
# three 2.5 s windows, a whole run on PipeWire once had one left)
HELPER = Path(__file__).with_name("passthrough_helper.py")
STFT_FLOOR_PLUS_HOP_MS = 48.0  # 32 ms window + one 16 ms hop
MAX_TOTAL_MS = 150.0
MAX_DRIFT_MS = 5.0
MAX_ESTIMATE_ERROR_MS = 10.0


def measure(server: SoundServer, wav: Path, recording: Path, window_s: float = WINDOW_S) -> list[float]:
    """Play ``wav`` into A while recording S.monitor; returns the A -> B delay per ``window_s`` window in ms."""
    recorder = server.record(f"{MIX_SINK}.monitor", recording, channels=2)
    time.sleep(0.3)
    server.play(wav).wait(timeout=300)
    time.sleep(0.3)
    stop_recording(recorder)
    a, b, rate = read_mix(recording)
    lags = windowed_lags_ms(a, b, rate, window_s)
    assert len(lags) >= 2, "the recording holds too little signal"
    return lags


def loopback_ms(server: SoundServer, tmp_path: Path) -> list[float]:
    wav = write_wav(tmp_path / "baseline.wav", noisy_speech(BASELINE_S, tmp_path, SNR_DB))
    module = server.pactl("load-module", "module-loopback", "source=A.monitor", "sink=B", "latency_msec=1").strip()
    try:
        time.sleep(0.5)
        return measure(server, wav, tmp_path / "loopback.wav", BASELINE_WINDOW_S)
    finally:
        server.pactl("unload-module", module)


def passthrough_ms(server: SoundServer, tmp_path: Path) -> list[float]:
    wav = write_wav(tmp_path / "baseline.wav", noisy_speech(BASELINE_S, tmp_path, SNR_DB))
    helper = subprocess.Popen([sys.executable, str(HELPER), "A.monitor", "B", "48000"],
                              env=daemon_env(server.env), stdout=subprocess.PIPE, text=True)
    try:
        assert helper.stdout is not None and "running" in helper.stdout.readline()
        time.sleep(1.0)
        return measure(server, wav, tmp_path / "passthrough.wav", BASELINE_WINDOW_S)
    finally:
        helper.terminate()
        helper.wait(timeout=10)


def rtenhance_ms(server: SoundServer, tmp_path: Path,
                 seconds: float) -> tuple[list[float], list[float], str, StatsSummary]:
    """(delay per window, the stats' end-to-end estimates while measuring, the daemon log, the stats then)."""
    wav = write_wav(tmp_path / "speech.wav", noisy_speech(seconds, tmp_path, SNR_DB))
    stats = tmp_path / "stats.jsonl"
    daemon = DaemonProcess(
        ["--input", "pulse:A.monitor", "--output", "pulse:B", "--weights", str(weights_path(tmp_path)),
         "--stats-json", str(stats), "--set", "stats.interval_s=1"],
        daemon_env(server.env), tmp_path / "daemon.log",
    )
    try:
        daemon.wait_ready()
        time.sleep(2.0)
        before = len(read_json_lines(stats))
        start = time.time()
        lags = measure(server, wav, tmp_path / "rtenhance.wav")
        end = time.time()
        estimates = [float(s["latency_ms"]) for s in read_json_lines(stats)[before + 1 :] if s["latency_ms"]]
        time.sleep(1.1)
    finally:
        code, _ = daemon.terminate()
    assert code == 0, daemon.log()[-2000:]
    return lags, estimates, daemon.log(), summarise_stats(read_json_lines(stats), start, end)


def check_rtenhance(lags: list[float], estimates: list[float], passthrough: float, log: str, drift_span: int,
                    span: StatsSummary) -> None:
    """The delay over passthrough, in total, against the stats' estimate, and its drift from the first
    ``drift_span`` windows to the last. A glitch while measuring (a playback underflow: a stalled worker,
    a graph change) makes the jitter buffer grow once, as it should; a larger move then is reported as an
    expected failure with its cause, and without an underflow it fails."""
    measured = statistics.median(lags)
    assert measured - passthrough <= STFT_FLOOR_PLUS_HOP_MS, (lags, passthrough, log[-3000:])
    assert measured <= MAX_TOTAL_MS, (lags, log[-3000:])
    estimate = statistics.median(estimates)
    assert abs(estimate - measured) <= MAX_ESTIMATE_ERROR_MS, (estimates, lags)
    first, last = statistics.median(lags[:drift_span]), statistics.median(lags[-drift_span:])
    if abs(last - first) > MAX_DRIFT_MS and span.underflows > 0:
        pytest.xfail(f"the delay moved {last - first:+.1f} ms after {span.underflows} underflows while measuring")
    assert abs(last - first) <= MAX_DRIFT_MS, (lags, log[-3000:])


def test_latency_loopback_passthrough_rtenhance(sound_server, tmp_path, record_property):
    loopback = statistics.median(loopback_ms(sound_server, tmp_path))
    passthrough = statistics.median(passthrough_ms(sound_server, tmp_path))
    lags, estimates, log, span = rtenhance_ms(sound_server, tmp_path, seconds=15.0)
    figures = {"server": sound_server.kind, "loopback_ms": loopback, "passthrough_ms": passthrough, "rtenhance_ms": statistics.median(lags),
               "rtenhance_windows_ms": lags, "stats_estimate_ms": statistics.median(estimates)}
    for key, value in figures.items():
        record_property(key, value)
    print(f"latency figures: {figures}")
    check_skipped(span, log)
    check_rtenhance(lags, estimates, passthrough, log, drift_span=2, span=span)


@pytest.mark.slow
def test_latency_does_not_drift_over_a_minute(sound_server, tmp_path):
    passthrough = statistics.median(passthrough_ms(sound_server, tmp_path))
    lags, estimates, log, span = rtenhance_ms(sound_server, tmp_path, seconds=60.0)
    print(f"60 s run: windows {lags}, estimates {estimates}")
    check_skipped(span, log)
    check_rtenhance(lags, estimates, passthrough, log, drift_span=int(10.0 / WINDOW_S), span=span)
