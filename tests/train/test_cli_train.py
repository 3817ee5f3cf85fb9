"""``rtenhance train`` end to end on a few synthetic files: trains, refuses to overwrite, resumes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import soundfile as sf
import yaml

from tests.conftest import REPO
from tests.train.helpers import RATE, make_tiny_corpora

TIMEOUT_S = 300


def _write_folder(folder, clips):  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True)
    for clip in clips:
        sf.write(folder / clip.name, clip.samples, RATE)


def _train(cwd, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "rtenhance", "train", "--config", "train.yaml", "--no-progress", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=TIMEOUT_S,
    )


def _write_tiny_setup(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Synthetic clean/noise folders and a tiny train.yaml in ``tmp_path``."""
    train, val = make_tiny_corpora()
    _write_folder(tmp_path / "clean", train.speech + val.speech)
    _write_folder(tmp_path / "noise", train.noise + val.noise)
    config = {
        "name": "cli", "batch_size": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2, "val_pesq": False,
        "best_metric": "si_sdr", "threads": 1, "device": "cpu",
        "model": {"channels": 8, "dpgrnn_blocks": 1},
        "data": {"clean_dir": "clean", "noise_dir": "noise", "rir_dir": "", "val_speakers": [],
                 "val_clip_fraction": 0.2, "segment_seconds": 1.0, "val_mixtures": 2, "val_seconds": 1.0},
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))


def test_train_cli_runs_refuses_overwrite_and_resumes(tmp_path):
    _write_tiny_setup(tmp_path)
    first = _train(tmp_path, "--max-steps", "2")
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "runs" / "cli"
    assert {"last.pt", "best.pt", "train.log"} <= {p.name for p in run_dir.iterdir()}

    again = _train(tmp_path, "--max-steps", "3")
    assert again.returncode == 2 and "--resume" in again.stderr

    resumed = _train(tmp_path, "--max-steps", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "start step=2" in (run_dir / "train.log").read_text()
    assert "stopped at step 3" in resumed.stdout

    both = _train(tmp_path, "--resume", "--init-from", str(run_dir / "best.pt"))
    assert both.returncode == 2 and "drop --init-from" in both.stderr
    tuned = _train(tmp_path, "--max-steps", "1", "--init-from", str(run_dir / "best.pt"), "--set", "name=tuned")
    assert tuned.returncode == 0, tuned.stderr
    assert f"init_from={run_dir / 'best.pt'}" in (tmp_path / "runs" / "tuned" / "train.log").read_text()


@pytest.mark.slow
def test_train_cli_under_torchrun_with_two_gloo_processes(tmp_path):
    _write_tiny_setup(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "rtenhance",
         "train", "--config", "train.yaml", "--no-progress", "--max-steps", "2"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "runs" / "cli" / "train.log").read_text()
    assert log.count("start step=0") == 1 and "world_size=2" in log
    assert proc.stdout.count("stopped at step 2") == 1


def test_train_cli_rejects_unknown_key(tmp_path):
    (tmp_path / "train.yaml").write_text("optim:\n  learning_rate: 0.1\n")
    proc = _train(tmp_path)
    assert proc.returncode == 2
    assert "optim.learning_rate" in proc.stderr and "allowed keys" in proc.stderr
