"""The daemon's device watch: it follows a restarted sound server, a sink removed afterwards is logged and
never followed to another sink, and the daemon has no child process to leave behind when killed.

Takes ``restartable_server`` (``env``, ``pactl``, ``restart()``, ``load_sink``/``unload_sink``), so that
another sound server can be given to it.
"""

from __future__ import annotations

import os
import signal
import time

from tests.audio.daemon_support import TOLERANT_SET, DaemonProcess, daemon_env
from tests.audio.pulse_support import SINK_B
from tests.audio.test_native_watch import children, lasting_children

RESUME_WITHIN_S = 10.0  # retries every 2 s at most; the rest is a loaded machine
NOTICE_WITHIN_S = 3.0  # from the sink's removal to the log line
PLAYBACK_STREAM = "rtenhance playback"  # native_pulse's stream name
ORPHAN_GRACE_S = 0.5  # a pactl running at the kill ends within this


def our_playback(server) -> list[str]:
    """The sinks our playback stream plays into (none while it is closed)."""
    sinks, current = {}, None
    for line in server.pactl("list", "short", "sinks").splitlines():
        sinks[line.split("\t")[0]] = line.split("\t")[1]
    found = []
    for line in server.pactl("list", "sink-inputs").splitlines():
        line = line.strip()
        if line.startswith("Sink:"):
            current = sinks.get(line.split()[1], line.split()[1])
        if line == f'media.name = "{PLAYBACK_STREAM}"':
            found.append(current)
    return found


def test_watch_follows_a_restarted_server_a_removed_sink_is_logged_and_nothing_outlives_a_kill(
        restartable_server, tmp_path):
    server = restartable_server
    daemon = DaemonProcess(["--input", "pulse:A.monitor", "--output", "pulse:B", *TOLERANT_SET],
                           daemon_env(server.env), tmp_path / "daemon.log")
    try:
        daemon.wait_ready()
        assert lasting_children(daemon.process.pid) == set()  # no pactl subscribe (or anything else)
        server.restart()
        daemon.wait_for("resumed", timeout=RESUME_WITHIN_S)
        assert our_playback(server) == [SINK_B]
        lost_before = daemon.log().count("audio device lost")
        server.unload_sink(SINK_B)
        removed = time.monotonic()
        while daemon.log().count("audio device lost") == lost_before:
            assert time.monotonic() - removed < NOTICE_WITHIN_S, daemon.log()[-3000:]
            assert our_playback(server) in ([], [SINK_B]), our_playback(server)  # never moved elsewhere
            time.sleep(0.05)
        for _ in range(10):
            assert our_playback(server) == []
            time.sleep(0.1)
        server.load_sink(SINK_B)
        returned = time.monotonic()
        while daemon.log().count("resumed") < 2:
            assert time.monotonic() - returned < RESUME_WITHIN_S, daemon.log()[-3000:]
            time.sleep(0.05)
        assert our_playback(server) == [SINK_B]
        assert lasting_children(daemon.process.pid) == set()
        at_kill = children(daemon.process.pid)
        daemon.signal(signal.SIGKILL)
        daemon.process.wait(timeout=10)
    finally:
        daemon.kill()
    time.sleep(ORPHAN_GRACE_S)
    assert [pid for pid in at_kill if os.path.exists(f"/proc/{pid}")] == []
