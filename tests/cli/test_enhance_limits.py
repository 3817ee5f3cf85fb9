"""``rtenhance enhance`` in a subprocess: peak memory does not grow with the file's length, and Ctrl-C or
SIGTERM leave no partial file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO

RATE = 16000


def _long_wav(path: Path, minutes: float) -> Path:
    """Speech-like noise, written in one-minute blocks (the test itself stays small too)."""
    rng = np.random.default_rng(0)
    t = np.arange(60 * RATE) / RATE
    minute = (0.05 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    with sf.SoundFile(path, "w", RATE, 1, "PCM_16") as f:
        for _ in range(int(minutes)):
            f.write(minute + 0.01 * rng.standard_normal(minute.shape[0]).astype(np.float32))
    return path


def _peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of ``rtenhance enhance ARGS`` run to completion."""
    start = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "rtenhance", "enhance", *args], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, process.stderr.read().decode()[-2000:]
    return usage.ru_maxrss / 1024, time.monotonic() - start


@pytest.mark.parametrize("long_minutes", [8, pytest.param(30, marks=pytest.mark.slow)])
def test_peak_memory_does_not_grow_with_length(tmp_path, long_minutes):
    """1 minute against 8 (default run) or 30 minutes (slow: about 3.5 min on a busy 2-core machine) of
    16 kHz audio, offline path, one job: the peak RSS differs by less than 32 MB (it held the whole file
    before: 466 MB for 1 minute, 1.86 GB for 10 minutes). Measured: 322.1 MB and 322.6 MB for 1 and 30 min."""
    weights = tmp_path / "w.pt"
    from rtenhance.config import ModelConfig
    from rtenhance.model.checkpoint import save_checkpoint
    from tests.conftest import randomised_model

    save_checkpoint(randomised_model(ModelConfig(channels=8, dpgrnn_blocks=1)), weights)
    figures = {}
    for minutes in (1, long_minutes):
        src = _long_wav(tmp_path / f"in{minutes}.wav", minutes)
        figures[minutes] = _peak_rss_mb([str(src), str(tmp_path / f"out{minutes}.wav"), "--weights", str(weights)])
        assert sf.info(tmp_path / f"out{minutes}.wav").frames == minutes * 60 * RATE
        (tmp_path / f"in{minutes}.wav").unlink()
    print(json.dumps({f"{m} min": {"peak_rss_mb": round(r, 1), "wall_s": round(s, 1)} for m, (r, s) in figures.items()}))
    assert figures[long_minutes][0] - figures[1][0] < 32, figures


def _wait_for_part(folder: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not list(folder.glob(".*.part")):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-2000:]
        time.sleep(0.02)
    time.sleep(0.3)


@pytest.mark.parametrize(("signum", "code", "jobs"), [(signal.SIGTERM, 143, "1"), (signal.SIGINT, 130, "2")])
def test_interruption_leaves_no_partial_file(tmp_path, signum, code, jobs):
    """SIGTERM to the process, or Ctrl-C (SIGINT to the whole process group) with two worker processes:
    no partial file remains, and every output present is complete."""
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(3):
        _long_wav(src / f"clip{i}.wav", 2)
    weights = tmp_path / "w.pt"
    from rtenhance.model.checkpoint import save_checkpoint
    from tests.conftest import randomised_model

    save_checkpoint(randomised_model(), weights)
    # a shell's background job (`pytest ... &` in a script) ignores SIGINT, and an ignored signal stays
    # ignored in every child: the command would rightly not see the Ctrl-C. A handled one is reset at exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen([sys.executable, "-m", "rtenhance", "enhance", str(src), str(dst), "--weights",
                                    str(weights), "--jobs", jobs], cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        _wait_for_part(dst, process)
        if signum == signal.SIGINT:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        assert process.wait(timeout=60) == code, process.stderr.read()[-2000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not list(dst.glob(".*")), list(dst.iterdir())
    for out in dst.iterdir():
        assert sf.info(out).frames == 120 * RATE
