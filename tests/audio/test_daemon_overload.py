"""Overload: every model hop made slower than real time through the test-only setting, then back."""

from __future__ import annotations

import signal
import statistics
import time

from tests.audio.daemon_support import (
    check_skipped_hops, longest_silence_s, noisy_speech, read_json_lines,
    start_with_config, windowed_lags_ms, write_config, write_wav,
)
from tests.audio.pulse_support import MIX_SINK, read_mix, stop_recording

HOP_S = 0.016
SLOW_HOP_MS = 200.0  # the model takes 12 x real time: it misses every deadline
ATTENUATION_LIMIT_DB = 20.0  # keeps some noise in the output, so that digital silence can only be a gap
BEFORE_S, OVERLOAD_S, AFTER_S = 3.0, 3.0, 4.0
RECOVERY_S = 2.0
MEASURED_TOLERANCE_MS = 10.0  # the stats' end-to-end accuracy bound
TARGET_TOLERANCE_MS = 15.0  # the estimate follows the server's own latency reports, which move a little after an overload
STATS_INTERVAL_S = 0.5
BEFORE_WINDOW_S = 0.5  # delay windows before the overload


def test_overload_passes_audio_through_and_recovers(sound_server, tmp_path):
    seconds = BEFORE_S + OVERLOAD_S + AFTER_S + 1.0
    wav = write_wav(tmp_path / "speech.wav", noisy_speech(seconds, tmp_path, snr_db=15))
    # the default latency (as low as the timing allows): the engine's own depth, not a device-latency estimate
    sections = {"stats": {"interval_s": STATS_INTERVAL_S},
                "enhance": {"attenuation_limit_db": ATTENUATION_LIMIT_DB}, "debug": {"slow_hop_ms": 0.0}}
    daemon, config, stats = start_with_config(sound_server.env, tmp_path, sections)
    try:
        time.sleep(1.5)
        recorder = sound_server.record(f"{MIX_SINK}.monitor", tmp_path / "mix.wav", channels=2)
        time.sleep(0.2)
        player = sound_server.play(wav)
        started, started_wall = time.monotonic(), time.time()
        time.sleep(BEFORE_S)
        passthrough_before = read_json_lines(stats)[-1]["passthrough_hops"]
        overloaded_wall = time.time()
        overload_wall = time.time()
        write_config(config, {**sections, "debug": {"slow_hop_ms": SLOW_HOP_MS}})
        daemon.signal(signal.SIGHUP)
        time.sleep(OVERLOAD_S)
        write_config(config, sections)
        daemon.signal(signal.SIGHUP)
        injection_stopped = time.monotonic() - started
        recovered_at = time.time() + RECOVERY_S
        player.wait(timeout=seconds + 10)
        played_wall = time.time()
        stop_recording(recorder)
        time.sleep(0.6)
        lines = read_json_lines(stats)
        final = lines[-1]
    finally:
        code, _ = daemon.terminate()
    log = daemon.log()
    assert code == 0, log[-2000:]
    assert final["passthrough_hops"] > passthrough_before, final
    assert "overload:" in log and "passing audio through" in log, log[-3000:]

    a, b, rate = read_mix(tmp_path / "mix.wav")
    playing = slice(int(0.5 * rate), int((seconds - 0.5) * rate))
    assert longest_silence_s(b[playing], rate) <= HOP_S, "output stopped for longer than one hop"

    offset = int(0.2 * rate)  # the player started this long after the recorder
    # half-second windows: the 3 s before the overload hold five, so that a late player start or a glitch
    # of the server's leaves some (with 1 s windows there were two, and a whole run on PipeWire once had none)
    before = windowed_lags_ms(a[offset : offset + int(BEFORE_S * rate)], b[offset : offset + int((BEFORE_S + 0.5) * rate)],
                              rate, window_s=BEFORE_WINDOW_S)
    recovered_from = offset + int((injection_stopped + RECOVERY_S) * rate)
    after = windowed_lags_ms(a[recovered_from:], b[recovered_from:], rate, window_s=1.0)
    assert before and after, (before, after)
    # no delay piled up during the overload: measured latency as before (within the stats' accuracy) ...
    assert abs(statistics.median(after) - statistics.median(before)) <= MEASURED_TOLERANCE_MS, (before, after, log[-3000:])
    # ... and the daemon's own estimate is at its level before the overload again within RECOVERY_S
    estimates = [float(x["latency_ms"]) for x in lines if x["time"] >= recovered_at + STATS_INTERVAL_S and x["latency_ms"]]
    level = statistics.median(float(x["latency_ms"]) for x in lines if x["time"] <= overload_wall and x["latency_ms"])
    assert estimates and all(abs(e - level) <= TARGET_TOLERANCE_MS for e in estimates), (level, estimates)
    # no hop skipped the model before the overload, nor (for any cause but overload) after it
    check_skipped_hops(stats, started_wall, overloaded_wall, log)
    check_skipped_hops(stats, recovered_at, played_wall, log)
