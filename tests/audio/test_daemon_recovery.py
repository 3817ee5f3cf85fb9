"""Recovery from a stalled process (SIGSTOP for 2 s, as a suspend or a VM pause does) and a clean start.

After SIGCONT the capture backlog (2 s of old audio) must be dropped at once, logged, and the latency back
at its level within one second; a start must not count the playback ring's start-up as underflows.
"""

from __future__ import annotations

import signal
import statistics
import time

from tests.audio.daemon_support import noisy_speech, read_json_lines, start_with_config, write_wav

STOP_S = 2.0
RECOVER_S = 1.0  # the latency is back at its level this long after SIGCONT
STATS_INTERVAL_S = 0.25
LATENCY_TOLERANCE_MS = 15.0
MAX_STARTUP_UNDERFLOWS = 3  # before: 150-250 on every start


def test_sigstop_backlog_is_dropped_at_once_and_logged(pulse_server, tmp_path):
    wav = write_wav(tmp_path / "speech.wav", noisy_speech(12.0, tmp_path, snr_db=15))
    daemon, _, stats = start_with_config(pulse_server.env, tmp_path, {"stats": {"interval_s": STATS_INTERVAL_S}})
    player = None
    try:
        player = pulse_server.play(wav)
        time.sleep(4.0)
        before = [float(x["latency_ms"]) for x in read_json_lines(stats)[-8:] if x["latency_ms"]]
        first_lines = read_json_lines(stats)[:2]
        daemon.signal(signal.SIGSTOP)
        time.sleep(STOP_S)
        daemon.signal(signal.SIGCONT)
        resumed = time.time()
        time.sleep(RECOVER_S + 1.5)
        lines = read_json_lines(stats)
    finally:
        if player is not None:
            player.terminate()
            player.wait(timeout=10)
        code, _ = daemon.terminate()
    log = daemon.log()
    assert code == 0, log[-3000:]
    assert first_lines[0]["underflows"] <= MAX_STARTUP_UNDERFLOWS, first_lines
    final = lines[-1]
    # a stats line covers the interval before its time: the first wholly after RECOVER_S ends one interval later
    after = [float(x["latency_ms"]) for x in lines
             if x["time"] >= resumed + RECOVER_S + STATS_INTERVAL_S and x["latency_ms"]]
    print(f"before {before}, after {after}, backlog dropped {final['backlog_ms']:.0f} ms, "
          f"output dropped {final['adjust_ms']:.0f} ms")
    # what the server kept for us while we were stopped (it may keep nothing) was dropped, not played late,
    # and said so
    if final["backlog_ms"] + final["adjust_ms"] > 0:
        assert "stale capture" in log, log[-3000:]
    assert before and after, (before, after)
    level = statistics.median(before)
    assert max(after) <= level + LATENCY_TOLERANCE_MS, (level, after, log[-3000:])
