"""The runtime commands never import PyTorch (nor onnxruntime): each runs in a fresh interpreter
that has them installed, and ``sys.modules`` is read after the command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

CLIP = REPO / "rtenhance" / "data" / "demo_noisy.wav"
RUNNER = """
import os, sys
def report():
    heavy = sorted({name.partition(".")[0] for name in sys.modules} & {"torch", "onnxruntime", "onnx"})
    print("heavy modules:", ",".join(heavy) or "none", file=sys.stderr, flush=True)
exit_now = os._exit
def reporting_exit(status):
    report()
    exit_now(status)
os._exit = reporting_exit  # ``rtenhance run`` ends with os._exit
from rtenhance.cli import main
status = main(sys.argv[1:])
report()
raise SystemExit(status)
"""


def _commands(tmp: Path) -> dict[str, list[str]]:
    return {
        "enhance": ["enhance", str(CLIP), str(tmp / "clean.wav")],
        "enhance --streaming": ["enhance", str(CLIP), str(tmp / "clean2.wav"), "--streaming"],
        "run": ["run", "--input", f"file:{CLIP}", "--output", f"file:{tmp / 'run.wav'}", "--fast"],
        "profile": ["profile"],
        "devices": ["devices"],
        "service": ["service", "install"],
    }


@pytest.mark.parametrize("name", list(_commands(Path("."))))
def test_runtime_command_imports_no_torch(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", RUNNER, *_commands(tmp_path)[name]], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=180, check=False)
    assert "heavy modules: none" in done.stderr, done.stderr[-3000:]
    if name != "devices":  # a machine without a sound card may have no devices to list
        assert done.returncode == 0, done.stderr[-3000:]
