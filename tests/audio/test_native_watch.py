"""The device watch: removals and additions seen at once, a restarted server followed, no child process.

Both implementations (``NativeWatch`` on libpulse subscribe events, ``PollingWatch`` on pactl) are held to
the same behaviour.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rtenhance.audio.io.native_watch import LIBRARY, NativeWatch
from rtenhance.audio.io.pulse import WATCH_POLL_S, PollingWatch, PresenceWatch
from tests.audio.pulse_support import SINK_B
from tests.audio.sound_server import SoundServer, stop_server

NATIVE_NOTICE_S = 0.5  # subscribe events arrive within milliseconds; this allows for a loaded machine
RECONNECT_S = 5.0  # the watch reconnects every 0.25 s


def children(pid: int) -> set[int]:
    """PIDs of the live child processes of ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def lasting_children(pid: int, samples: int = 3, interval_s: float = 0.6) -> set[int]:
    """Children of ``pid`` seen in every one of ``samples`` looks ``interval_s`` apart (not a pactl of a few ms)."""
    lasting = children(pid)
    for _ in range(samples - 1):
        time.sleep(interval_s)
        lasting &= children(pid)
    return lasting


def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture(params=["native", "polling"])
def make_watch(request: pytest.FixtureRequest, restartable_server: SoundServer,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., PresenceWatch]]:
    """Builds a watch of the given kind on the test's own server; stops it afterwards."""
    if request.param == "native" and LIBRARY.unavailable_reason():
        pytest.skip(f"native watch unavailable: {LIBRARY.unavailable_reason()}")
    for key, value in restartable_server.env.items():
        monkeypatch.setenv(key, value)
    kind = NativeWatch if request.param == "native" else PollingWatch
    made: list[PresenceWatch] = []

    def build(sinks: tuple[str, ...], sources: tuple[str, ...], restore: Callable[[], None] | None = None):
        watch = kind(sinks, sources, restore)
        made.append(watch)
        return watch

    build.notice_s = NATIVE_NOTICE_S if request.param == "native" else WATCH_POLL_S + NATIVE_NOTICE_S
    yield build
    for watch in made:
        watch.stop()


def test_removal_and_return_are_seen_without_a_refresh(make_watch, restartable_server):
    watch = make_watch((SINK_B,), ("A.monitor",))
    watch.start()
    assert watch.missing is None
    restartable_server.unload_sink(SINK_B)
    wait_until(lambda: watch.missing == "pulse sink 'B' is gone", make_watch.notice_s)
    restartable_server.load_sink(SINK_B)
    wait_until(lambda: watch.missing is None, make_watch.notice_s)


def test_a_restarted_server_is_followed_and_no_process_is_started(make_watch, restartable_server):
    before = children(os.getpid())
    watch = make_watch((SINK_B,), ("A.monitor",))
    watch.start()
    stop_server(restartable_server)
    wait_until(lambda: watch.missing is not None and "does not answer" in watch.missing, make_watch.notice_s)
    restartable_server.restart()
    wait_until(lambda: watch.missing is None, RECONNECT_S)
    restartable_server.unload_sink(SINK_B)
    wait_until(lambda: watch.missing == "pulse sink 'B' is gone", make_watch.notice_s)
    server = {p.pid for p in restartable_server.processes}
    if restartable_server.clock is not None:
        server.add(restartable_server.clock.pid)
    assert lasting_children(os.getpid()) - before - server == set()


def test_refresh_calls_restore_only_when_the_server_answers_and_a_device_is_missing(make_watch,
                                                                                     restartable_server):
    calls: list[float] = []

    def restore() -> None:
        calls.append(time.monotonic())
        restartable_server.load_sink(SINK_B)

    watch = make_watch((SINK_B,), (), restore)
    watch.start()
    watch.refresh()
    assert calls == []
    restartable_server.unload_sink(SINK_B)
    watch.refresh()
    assert len(calls) == 1 and watch.missing is None  # refresh waited for the server's answer
    stop_server(restartable_server)
    watch.refresh()
    assert len(calls) == 1 and "does not answer" in (watch.missing or "")
