"""Logging under systemd: sd-daemon priority prefixes and no timestamp when stderr is the journal stream
(``JOURNAL_STREAM``), plain timestamped lines otherwise."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from rtenhance.cli.log_setup import JournalFormatter, sd_priority, writes_to_journal
from tests.conftest import REPO

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def test_levels_map_to_sd_daemon_priorities() -> None:
    levels = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
    assert [sd_priority(level) for level in levels] == [7, 6, 4, 3, 2]


def test_every_line_of_a_record_carries_the_prefix() -> None:
    record = logging.LogRecord("rtenhance", logging.WARNING, __file__, 1, "first\nsecond", None, None)
    assert JournalFormatter().format(record) == "<4>rtenhance: first\n<4>second"


def test_journal_stream_must_be_this_stream(tmp_path: Path, monkeypatch) -> None:
    with open(tmp_path / "log", "w") as stream, open(tmp_path / "other", "w") as other:
        info = os.fstat(other.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert not writes_to_journal(stream)
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert writes_to_journal(stream)
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert not writes_to_journal(stream)


def _daemon_log(tmp_path: Path, journal: bool) -> str:
    """The stderr of ``rtenhance -v run`` on a short file, with JOURNAL_STREAM naming it or not."""
    clip = REPO / "rtenhance" / "data" / "demo_noisy.wav"
    log_path = tmp_path / f"stderr-{journal}.log"
    with open(log_path, "w") as stream:
        info = os.fstat(stream.fileno())
        env = {**os.environ, "PYTHONPATH": str(REPO), "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}" if journal else ""}
        done = subprocess.run(
            [sys.executable, "-m", "rtenhance", "-v", "run", "--input", f"file:{clip}", "--output",
             f"file:{tmp_path / 'out.wav'}", "--fast", "--set", "engine.cpus=[99999]"],
            env=env, stdout=subprocess.DEVNULL, stderr=stream, timeout=120, check=False)
    assert done.returncode == 2  # the bad CPU is refused: an error line
    return log_path.read_text()


def test_daemon_logs_with_priorities_under_journald(tmp_path: Path) -> None:
    prefixed = [line for line in _daemon_log(tmp_path, journal=True).splitlines() if line]
    assert prefixed and all(re.match(r"<[2-7]>", line) for line in prefixed), prefixed
    assert any(line.startswith("<6>rtenhance") for line in prefixed), prefixed
    assert prefixed[-1].startswith("<3>rtenhance run: error: engine.cpus"), prefixed
    assert any(line.startswith("<7>") for line in prefixed), prefixed
    assert not any(TIMESTAMP.search(line) for line in prefixed), prefixed
    plain = _daemon_log(tmp_path, journal=False)
    assert TIMESTAMP.search(plain) and not re.search(r"^<\d>", plain, re.M), plain
