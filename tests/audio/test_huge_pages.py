"""disable_huge_pages: the process leaves transparent huge pages (and khugepaged's scans), as the kernel
reports it in /proc/PID/status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, python_child_env

STATUS = Path("/proc/self/status")
CHILD = """
import ctypes
from rtenhance.audio.realtime.huge_pages import PR_SET_THP_DISABLE, disable_huge_pages

def thp_enabled() -> str:
    return next(line.split()[1] for line in open("/proc/self/status") if line.startswith("THP_enabled:"))

ctypes.CDLL(None).prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0)  # the test process set it, and children inherit it
print(thp_enabled(), disable_huge_pages(), thp_enabled())
"""


@pytest.mark.skipif(not STATUS.is_file() or "THP_enabled:" not in STATUS.read_text(),
                    reason="the kernel does not report THP_enabled in /proc/self/status (Linux before 5.0)")
def test_the_process_leaves_transparent_huge_pages():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=REPO,
                          env=python_child_env(), timeout=60, check=True)
    assert done.stdout.split() == ["1", "True", "0"], done.stdout + done.stderr
