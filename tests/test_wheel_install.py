"""What a user installs: the wheel and sdist built from this checkout, the wheel installed into a fresh venv
outside the checkout with no compiler on PATH and without PyTorch, then each runtime command run there.

The C libraries must come from the wheel: the venv's commands run with ``CC`` pointing at a compiler that
always fails and an empty cache folder, which must stay empty. The daemon runs 5 s on the private
PulseAudio and PipeWire test servers and must log the native backend, the C hop and the C stream library
(libpulse on PulseAudio, libpipewire on PipeWire).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.audio.sound_server import SoundServer

REPO = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 600
INSTALL_TIMEOUT_S = 600
COMMAND_TIMEOUT_S = 120
DAEMON_SECONDS = 5.0
READY_TIMEOUT_S = 30.0
FILE_RATE = 44100
FILE_SECONDS = 2.0
NO_COMPILER = "/bin/false"


def _run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = COMMAND_TIMEOUT_S) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """(the venv's rtenhance script, its environment, a work folder outside the checkout)."""
    if importlib_missing("build"):
        pytest.skip("needs the 'build' package (pip install 'rtenhance[dev]')")
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    # the sdist, then the wheel from it; without build isolation (the dev venv has the build backend) to
    # save the minute a fresh build environment takes
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)], dict(os.environ), REPO,
         BUILD_TIMEOUT_S)
    wheels, sdists = sorted(dist.glob("rtenhance-*.whl")), sorted(dist.glob("rtenhance-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in dist.iterdir())
    assert "-none-any" not in wheels[0].name, "the wheel must be a platform wheel (it holds the C libraries)"
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    install_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    install_env.update(PATH=str(bin_dir), CC=NO_COMPILER)  # no compiler on PATH while installing
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheels[0])], install_env, root, INSTALL_TIMEOUT_S)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}", CC=NO_COMPILER,
               XDG_CACHE_HOME=str(root / "cache"), PYTHONUNBUFFERED="1")
    return bin_dir / "rtenhance", env, root


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def _daemon_log(rtenhance: Path, env: dict[str, str], server: SoundServer, log_path: Path) -> str:
    """Run the installed daemon for DAEMON_SECONDS between the server's sinks A and B; its log, once it has
    shown the native backend, the C hop and a C stream library and exited 0 on SIGTERM."""
    with open(log_path, "wb") as log_file:
        daemon = subprocess.Popen([str(rtenhance), "--input", "pulse:A.monitor", "--output", "pulse:B"],
                                  env={**server.env, **env}, cwd=log_path.parent, stdout=log_file,
                                  stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while "audio running" not in log_path.read_text(errors="replace"):
                assert daemon.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.1)
            time.sleep(DAEMON_SECONDS)
            assert daemon.poll() is None, log_path.read_text()[-3000:]
        finally:
            daemon.send_signal(signal.SIGTERM)
            status = daemon.wait(timeout=20)
    text = log_path.read_text(errors="replace")
    assert status == 0, text[-3000:]
    assert "backend native" in text and "signal path in C" in text, text[-3000:]
    assert "libpulse-simple" not in text, text[-3000:]  # a C stream library loaded from the wheel
    return text


def test_wheel_runtime_without_torch(installed: tuple[Path, dict[str, str], Path], pulse_server: SoundServer,
                                     pipewire_server: SoundServer) -> None:
    rtenhance, env, root = installed
    python = rtenhance.with_name("python")
    probe = "import importlib.util, rtenhance; print(importlib.util.find_spec('torch') is None, rtenhance.__file__)"
    no_torch, location = _run([str(python), "-c", probe], env, root).split()
    assert no_torch == "True" and not location.startswith(str(REPO)), location

    assert _run([str(rtenhance), "--version"], env, root).strip().startswith("rtenhance ")

    t = np.arange(int(FILE_RATE * FILE_SECONDS)) / FILE_RATE
    noise = np.random.default_rng(0).standard_normal(t.size)
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * noise, 0.1 * noise], axis=1)
    noisy = root / "noisy44.wav"
    sf.write(noisy, stereo, FILE_RATE)
    _run([str(rtenhance), "enhance", str(noisy), str(root / "clean44.wav")], env, root)
    out, rate = sf.read(root / "clean44.wav", always_2d=True)
    assert rate == FILE_RATE and out.shape == stereo.shape and np.isfinite(out).all()

    log = _run([str(rtenhance), "run", "--input", f"file:{noisy}", "--output", f"file:{root / 'run44.wav'}", "--fast"],
               env, root)
    assert "backend native" in log and "signal path in C" in log, log
    assert sf.info(str(root / "run44.wav")).samplerate == FILE_RATE

    assert "total" in _run([str(rtenhance), "profile"], env, root)

    assert "through libpulse" in _daemon_log(rtenhance, env, pulse_server, root / "pulse.log")
    assert "through libpipewire" in _daemon_log(rtenhance, env, pipewire_server, root / "pipewire.log")
    cache = root / "cache" / "rtenhance"
    assert not cache.exists() or not any(cache.iterdir()), "a library was compiled instead of loaded from the wheel"
    shutil.rmtree(root / "venv", ignore_errors=True)
