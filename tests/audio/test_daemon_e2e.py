"""End to end through a real sound server (PulseAudio and PipeWire): noisy speech into sink A, rtenhance
A.monitor -> B."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from rtenhance.dsp.resample import resample
from rtenhance.enhancer import enhance_offline
from rtenhance.model.checkpoint import load_model
from tests.audio.daemon_support import (
    LEARNING_UNDERFLOWS, MODEL_RATE, TOLERANT_SET, DaemonProcess, aligned_correlation, check_skipped_hops, daemon_env, noisy_speech,
    read_json_lines, stats_lines, weights_path, write_wav,
)
from tests.audio.pulse_support import RATE, stop_recording

SECONDS = 6.0
MIN_CORRELATION = 0.9
PREROLL_S = 2.0
DEFAULTS_TIMEOUT_S = 10.0  # for the server to report the defaults a test set
STATS_FIELDS = ("hop p50", "p95", "p99", "max", "step p99", "rtf", "latency", "jitter", "drift", "overflows",
                "underflows", "skipped ring_low", "overload", "bypass", "resets", "dropped", "backlog", "cpu")
JSON_FIELDS = ("hop_ms_p50", "hop_ms_p95", "hop_ms_p99", "hop_ms_max", "step_p99_ms", "rtf", "latency_ms", "jitter_ms",
               "drift_ppm", "overflows", "underflows", "passthrough_hops", "skipped_ring_low", "skipped_overload",
               "skipped_bypass", "state_resets", "adjust_ms", "backlog_ms", "cpu_percent")


@pytest.fixture
def server_defaults(sound_server):
    """Make A.monitor and B the server's default source and sink for one test."""
    info = sound_server.pactl("info")
    before = {key: line.split(": ", 1)[1] for line in info.splitlines() for key in ("Default Sink", "Default Source")
              if line.startswith(key + ": ")}
    sound_server.pactl("set-default-source", "A.monitor")
    sound_server.pactl("set-default-sink", "B")
    # PipeWire's session manager applies a new default a moment later; a stream opened before it does goes to
    # the old default (the recording of B.monitor then stayed empty: B sat idle)
    deadline = time.monotonic() + DEFAULTS_TIMEOUT_S
    while not {"Default Sink: B", "Default Source: A.monitor"} <= set(sound_server.pactl("info").splitlines()):
        assert time.monotonic() < deadline, sound_server.pactl("info")
        time.sleep(0.1)
    yield
    sound_server.pactl("set-default-sink", before["Default Sink"])
    sound_server.pactl("set-default-source", before["Default Source"])


@pytest.mark.parametrize(
    "ends", [("pulse:A.monitor", "pulse:B"), ("mic", "speakers"), ("pulse", "pulse")], ids=["named", "defaults", "portaudio"]
)
def test_live_output_matches_offline_enhancement(sound_server, tmp_path, ends, request):
    env = daemon_env(sound_server.env)
    if ends[0] == "mic":
        request.getfixturevalue("server_defaults")
    if ends[0] == "pulse":  # PortAudio's ALSA "pulse" device, routed by the PulseAudio client variables
        env.update(PULSE_SOURCE="A.monitor", PULSE_SINK="B")
    weights = weights_path(tmp_path)
    noisy = noisy_speech(SECONDS, tmp_path)
    wav = write_wav(tmp_path / "noisy.wav", noisy)
    stats_json = tmp_path / "stats.jsonl"
    daemon = DaemonProcess(
        ["--input", ends[0], "--output", ends[1], "--weights", str(weights),
         "--stats-json", str(stats_json), "--set", "stats.interval_s=1", *TOLERANT_SET],
        env, tmp_path / "daemon.log",
    )
    try:
        daemon.wait_ready()
        time.sleep(2.0)  # the first second may underflow while the streams settle
        settled = read_json_lines(stats_json)[-1]
        recorder = sound_server.record("B.monitor", tmp_path / "out.wav")
        time.sleep(0.3)
        sound_server.play(wav).wait(timeout=SECONDS + 10)
        time.sleep(0.5)
        stop_recording(recorder)
        played = time.time()
        time.sleep(1.1)
        final = read_json_lines(stats_json)[-1]
    finally:
        code, _ = daemon.terminate()
    assert code == 0, daemon.log()[-2000:]

    import soundfile as sf

    recorded, rate = sf.read(str(tmp_path / "out.wav"), dtype="float32", always_2d=True)
    assert rate == RATE
    # before the speech the daemon heard seconds of digital silence, which sets the model's recurrent state;
    # the offline reference hears the same silence first
    preroll = np.zeros(int(PREROLL_S * MODEL_RATE), dtype=np.float32)
    offline = enhance_offline(load_model(weights), np.concatenate([preroll, noisy]), causal=True)[preroll.shape[0] :]
    expected = resample(offline, MODEL_RATE, RATE)
    corr = aligned_correlation(expected, recorded[:, 0], RATE)

    lines = stats_lines(daemon.log())
    assert lines, daemon.log()
    for field in STATS_FIELDS:
        assert field in lines[-1], (field, lines[-1])
    for field in JSON_FIELDS:
        assert field in final, (field, final)
    assert np.isfinite(final["latency_ms"])
    check_skipped_hops(stats_json, float(settled["time"]), played, daemon.log())
    # more underflows than the jitter buffer's learning are reported, not failed (see LEARNING_UNDERFLOWS)
    underflows = final["underflows"] - settled["underflows"]
    timing = f"{underflows} underflows after the first 2 s (load {os.getloadavg()[0]:.1f}), correlation {corr:.3f}"
    if underflows > LEARNING_UNDERFLOWS:
        pytest.xfail(timing)
    assert corr >= MIN_CORRELATION, f"{timing}; log:\n{daemon.log()[-3000:]}"
