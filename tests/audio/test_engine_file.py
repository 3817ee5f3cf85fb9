"""The daemon on files: file: input -> file: output through the real engine, equal to the Enhancer."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from rtenhance.backends import make_stepper, resolve_backend
from rtenhance.dsp.resample import resample
from rtenhance.enhancer import Enhancer
from rtenhance.model.checkpoint import load_model, save_checkpoint
from rtenhance.model.gtcrn import GTCRN
from tests.audio.daemon_support import lag_and_correlation
from tests.conftest import REPO


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random.pt"
    save_checkpoint(GTCRN().eval(), path)
    return path


def run(args, tmp_path, **env_extra):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path), **env_extra}
    return subprocess.run([sys.executable, "-m", "rtenhance", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def speech_like(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.2 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.03 * rng.standard_normal(t.size)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32) if channels > 1 else x.astype(np.float32)


def test_fast_file_run_equals_the_streaming_enhancer(weights, tmp_path):
    x = speech_like(1.0, 16000)
    sf.write(str(tmp_path / "in.wav"), x, 16000, subtype="FLOAT")
    done = run(["--input", f"file:{tmp_path / 'in.wav'}", "--output", f"file:{tmp_path / 'out.wav'}", "--fast",
                "--weights", str(weights)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "stats: hop p50" in done.stderr
    y, rate = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    model = load_model(weights)
    expected = Enhancer(make_stepper(model, resolve_backend("auto")), model.config.stft).enhance(x)
    assert rate == 16000 and y.shape == x.shape
    np.testing.assert_allclose(y, expected, atol=2e-4)  # 16-bit WAV output


def test_48k_stereo_file_is_downmixed_resampled_and_aligned(weights, tmp_path):
    x = speech_like(1.0, 48000, channels=2)
    sf.write(str(tmp_path / "in.wav"), x, 48000)
    done = run(["--input", f"file:{tmp_path / 'in.wav'}", "--output", f"file:{tmp_path / 'out.wav'}", "--fast",
                "--weights", str(weights), "--set", "enhance.attenuation_limit_db=0"], tmp_path)
    assert done.returncode == 0, done.stderr
    y, rate = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    assert rate == 48000 and y.shape == (x.shape[0],)
    # attenuation limit 0 dB passes the input through: band-limited to 8 kHz, aligned, same level
    reference = resample(resample(x[:, 0], 48000, 16000), 16000, 48000)
    lag, corr = lag_and_correlation(reference, y, max_lag=480)
    assert lag <= 1 and corr > 0.99


def test_realtime_file_input_runs_at_real_time(weights, tmp_path):
    sf.write(str(tmp_path / "in.wav"), speech_like(1.0, 16000), 16000)
    import time

    start = time.monotonic()
    done = run(["--input", f"file:{tmp_path / 'in.wav'}", "--output", f"file:{tmp_path / 'out.wav'}",
                "--weights", str(weights), "--set", "stats.interval_s=0.5"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - start >= 1.0
    assert sf.info(str(tmp_path / "out.wav")).frames == 16000


def test_engine_cpus_pins_the_threads_or_names_the_allowed_cpus(weights, tmp_path):
    sf.write(str(tmp_path / "in.wav"), speech_like(0.5, 16000), 16000)
    args = ["--input", f"file:{tmp_path / 'in.wav'}", "--output", f"file:{tmp_path / 'out.wav'}", "--fast",
            "--weights", str(weights)]
    cpu = min(os.sched_getaffinity(0))
    done = run([*args, "--set", f"engine.cpus=[{cpu}]"], tmp_path)
    assert done.returncode == 0 and f"audio and model threads on CPU {cpu}" in done.stderr, done.stderr
    done = run([*args, "--set", "engine.cpus=[4096]"], tmp_path)
    assert done.returncode == 2 and "engine.cpus: [4096] is not allowed; expected some of" in done.stderr


def test_fast_needs_file_output(weights, tmp_path):
    sf.write(str(tmp_path / "in.wav"), speech_like(0.5, 16000), 16000)
    done = run(["--input", f"file:{tmp_path / 'in.wav'}", "--output", "speakers", "--fast", "--weights", str(weights)],
               tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == "rtenhance run: error: --fast needs a file: input and a file: output"


def test_unreadable_input_file(tmp_path):
    done = run(["--input", f"file:{tmp_path / 'missing.wav'}", "--output", f"file:{tmp_path / 'o.wav'}"], tmp_path)
    assert done.returncode == 2 and "cannot read audio file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
