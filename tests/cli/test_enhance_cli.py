"""``rtenhance enhance``: formats kept, errors reported in one line with exit 2 and no output left."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtenhance.config import ModelConfig
from rtenhance.model.checkpoint import save_checkpoint
from tests.conftest import REPO, noise_signal, randomised_model


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "small.pt"
    save_checkpoint(randomised_model(ModelConfig(channels=8, dpgrnn_blocks=1)), path)
    return path


def _rtenhance(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rtenhance", *args], capture_output=True, text=True, cwd=REPO)


def _signal(rate: int, channels: int, seconds: float = 0.6) -> np.ndarray:
    mono = noise_signal(seconds, rate=rate)
    return np.stack([mono * (0.5 + 0.5 * c) for c in range(channels)], axis=1)


@pytest.mark.parametrize(
    ("name", "rate", "channels", "subtype"),
    [
        ("stereo44k.wav", 44100, 2, "PCM_16"),
        ("mono8k.wav", 8000, 1, "PCM_16"),
        ("float48k.wav", 48000, 1, "FLOAT"),
        ("pcm24.flac", 22050, 1, "PCM_24"),
        ("mono.ogg", 16000, 1, "VORBIS"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True], ids=["offline", "streaming"])
def test_keeps_rate_channels_length(tmp_path: Path, weights: Path, name: str, rate: int, channels: int, subtype: str, streaming: bool) -> None:
    src = tmp_path / name
    sf.write(src, _signal(rate, channels), rate, subtype=subtype)
    dst = tmp_path / f"out_{name}"
    result = _rtenhance("enhance", str(src), str(dst), "--weights", str(weights), *(["--streaming"] if streaming else []))
    assert result.returncode == 0, result.stderr
    info_in, info_out = sf.info(src), sf.info(dst)
    assert (info_out.samplerate, info_out.channels, info_out.frames) == (rate, channels, info_in.frames)
    assert info_out.subtype == subtype
    out = sf.read(dst, dtype="float32")[0]
    assert np.isfinite(out).all() and np.abs(out).max() > 0


def _expect_failure(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_inputs_exit_2_without_output(tmp_path: Path, weights: Path) -> None:
    out = tmp_path / "out.wav"
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 16000)
    nan = tmp_path / "nan.wav"
    samples = _signal(16000, 1)
    samples[100] = np.nan
    sf.write(nan, samples, 16000, subtype="FLOAT")
    cases = [
        (tmp_path / "missing.wav", "no such file"),
        (not_audio, "not a readable audio file"),
        (empty, "contains no samples"),
        (nan, "non-finite"),
    ]
    for src, fragment in cases:
        _expect_failure(_rtenhance("enhance", str(src), str(out), "--weights", str(weights)), fragment)
        assert not out.exists()
        assert not list(tmp_path.glob(".out.wav*"))


def test_refuses_to_overwrite_input(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in.wav"
    sf.write(src, _signal(16000, 1), 16000)
    before = src.read_bytes()
    _expect_failure(_rtenhance("enhance", str(src), str(src), "--weights", str(weights)), "equals the input")
    assert src.read_bytes() == before


def test_bad_weights(tmp_path: Path) -> None:
    src = tmp_path / "in.wav"
    sf.write(src, _signal(16000, 1), 16000)
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"\x00" * 100)
    _expect_failure(_rtenhance("enhance", str(src), str(tmp_path / "o.wav"), "--weights", str(bogus)), "bogus.pt")
    assert not (tmp_path / "o.wav").exists()


def test_directory_in_directory_out(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i, rate in enumerate((16000, 48000)):
        sf.write(src / f"clip{i}.wav", _signal(rate, 1, 0.3), rate)
    (src / "readme.txt").write_text("not audio")
    dst = tmp_path / "out"
    result = _rtenhance("enhance", str(src), str(dst), "--weights", str(weights))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in dst.iterdir()) == ["clip0.wav", "clip1.wav"]
    _expect_failure(_rtenhance("enhance", str(src), str(src), "--weights", str(weights)), "equals the input")
