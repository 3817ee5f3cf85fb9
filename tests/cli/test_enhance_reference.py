"""Acceptance: the published DNS3 checkpoint reproduces the official enhanced clip."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from rtenhance.enhancer import enhance_offline
from rtenhance.file_enhance import enhance_samples
from rtenhance.model.checkpoint import load_model
from tests.conftest import REPO, need_shared

FIRST_32_MS = 512  # samples at 16 kHz: where causal framing legitimately differs
PCM16_STEP = 1 / 32768


def _enhance(tmp_path: Path, *extra: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mix = need_shared("reference", "mix.wav")
    weights = need_shared("reference", "gtcrn_dns3.tar")
    out = tmp_path / "out.wav"
    subprocess.run(
        [sys.executable, "-m", "rtenhance", "enhance", str(mix), str(out), "--weights", str(weights), *extra],
        check=True, cwd=REPO, capture_output=True,
    )
    x = sf.read(mix, dtype="float32")[0]
    ref = sf.read(need_shared("reference", "enh.wav"), dtype="float32")[0]
    return x, sf.read(out, dtype="float32")[0], ref


def test_offline_reproduces_official_output(tmp_path: Path) -> None:
    x, y, ref = _enhance(tmp_path)
    assert y.shape == x.shape
    n = min(len(y), len(ref))
    assert np.abs(y[:n] - ref[:n]).max() <= 1e-4


def test_streaming_matches_causal_offline_and_official(tmp_path: Path) -> None:
    x, y, ref = _enhance(tmp_path, "--streaming")
    assert y.shape == x.shape
    model = load_model(need_shared("reference", "gtcrn_dns3.tar"))
    causal = enhance_offline(model, x, causal=True)
    # the output file keeps the input's PCM16 encoding: allow one quantisation step on top of 1e-5
    assert np.abs(y - causal).max() <= 1e-5 + PCM16_STEP
    float_out = enhance_samples(model, x[:, None], 16000, streaming=True)[:, 0]
    assert np.abs(float_out - causal).max() <= 1e-5
    n = min(len(y), len(ref))
    assert np.abs(y[FIRST_32_MS:n] - ref[FIRST_32_MS:n]).max() <= 5e-3
