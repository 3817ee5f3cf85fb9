"""``rtenhance enhance`` as a batch tool: every bad file reported, no partial or unrelated file touched,
outputs with normal modes, insane outputs refused, errors with their real reason, parallel jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from rtenhance.cli import main
from rtenhance.config import ModelConfig
from rtenhance.model.checkpoint import save_checkpoint
from tests.conftest import noise_signal, randomised_model


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "small.pt"
    save_checkpoint(randomised_model(ModelConfig(channels=8, dpgrnn_blocks=1)), path)
    return path


def _wav(path: Path, seconds: float = 0.5, rate: int = 16000, peak: float | None = None, **kw) -> Path:
    x = noise_signal(seconds, rate=rate)
    if peak is not None:
        x = x / np.abs(x).max() * peak
    sf.write(path, x, rate, **kw)
    return path


def _enhance(capsys, *args: str) -> tuple[int, list[str], str]:
    code = main(["enhance", *map(str, args)])
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.strip()], captured.out


def _parts(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.part"))


def test_directory_enhances_every_good_file_and_counts_the_bad(tmp_path, weights, capsys):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    _wav(src / "a.wav")
    (src / "b.wav").write_text("not audio")
    _wav(src / "c.mp3", rate=16000, format="MP3")
    sf.write(src / "d.wav", np.zeros((0, 1), np.float32), 16000)
    _wav(src / "e.wav")
    (src / "notes.txt").write_text("skipped: not an audio extension")
    code, err, _ = _enhance(capsys, src, dst, "--weights", weights, "--jobs", "1")
    assert code == 1
    assert sorted(p.name for p in dst.iterdir()) == ["a.wav", "c.mp3", "e.wav"]
    assert any("b.wav: not a readable audio file" in line for line in err), err
    assert any("d.wav: contains no samples" in line for line in err), err
    assert err[-1] == "rtenhance enhance: 2 of 5 file(s) failed"
    code, err, _ = _enhance(capsys, src / "c.mp3", tmp_path / "single.mp3", "--weights", weights)
    assert code == 0 and (tmp_path / "single.mp3").is_file(), err


def test_parallel_jobs_equal_one_job_and_report_throughput(tmp_path, weights, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        _wav(src / f"clip{i}.wav", seconds=0.4 + 0.1 * i)
    code, _, out = _enhance(capsys, src, tmp_path / "one", "--weights", weights, "--jobs", "1")
    assert code == 0
    code, _, out = _enhance(capsys, src, tmp_path / "two", "--weights", weights, "--jobs", "2")
    assert code == 0 and "enhanced 4 file(s), 2.2 s of audio in" in out and "s of audio per second" in out
    for i in range(4):
        np.testing.assert_array_equal(sf.read(tmp_path / "one" / f"clip{i}.wav")[0],
                                      sf.read(tmp_path / "two" / f"clip{i}.wav")[0])


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_the_umask_mode(tmp_path, weights, capsys, umask):
    src = _wav(tmp_path / "in.wav")
    old = os.umask(umask)
    try:
        code, err, _ = _enhance(capsys, src, tmp_path / "out.wav", "--weights", weights)
    finally:
        os.umask(old)
    assert code == 0, err
    assert (tmp_path / "out.wav").stat().st_mode & 0o777 == 0o666 & ~umask


def test_stale_partial_files_are_removed_and_live_ones_kept(tmp_path, weights, capsys):
    dead = subprocess.run(["true"]).returncode or subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".old.wav.rtenhance-{dead.pid}-0123abcd.part"
    live = tmp_path / f".other.wav.rtenhance-{os.getppid()}-0123abcd.part"
    foreign = tmp_path / ".notes.part"
    for path in (stale, live, foreign):
        path.write_bytes(b"x" * 1000)
    code, err, _ = _enhance(capsys, _wav(tmp_path / "in.wav"), tmp_path / "out.wav", "--weights", weights)
    assert code == 0 and "removed 1 partial file(s)" in err[0]
    assert not stale.exists() and live.exists() and foreign.exists()


def test_existing_outputs_are_never_replaced_without_overwrite(tmp_path, weights, capsys):
    """``enhance d/in d``: OUT is the parent of IN and holds an unrelated file of the same name."""
    d = tmp_path / "d"
    (d / "in").mkdir(parents=True)
    _wav(d / "in" / "a.wav")
    _wav(d / "in" / "b.wav")
    (d / "a.wav").write_bytes(b"my own precious file")
    code, err, _ = _enhance(capsys, d / "in", d, "--weights", weights)
    assert code == 2 and len(err) == 1 and "a.wav: exists" in err[0] and "--overwrite" in err[0], err
    assert (d / "a.wav").read_bytes() == b"my own precious file" and not (d / "b.wav").exists()
    code, err, _ = _enhance(capsys, d / "in", d, "--weights", weights, "--overwrite")
    assert code == 0 and sf.info(d / "a.wav").frames == sf.info(d / "in" / "a.wav").frames


def test_non_finite_or_insane_output_is_refused(tmp_path, weights, capsys):
    huge = _wav(tmp_path / "huge.wav", peak=1e19, subtype="FLOAT")
    code, err, _ = _enhance(capsys, huge, tmp_path / "out.wav", "--weights", weights)
    assert code == 2 and len(err) == 1 and "not finite" in err[0], err
    model = randomised_model(ModelConfig(channels=8, dpgrnn_blocks=1))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1e30)
    scaled = tmp_path / "scaled.pt"
    save_checkpoint(model, scaled)
    code, err, _ = _enhance(capsys, _wav(tmp_path / "in.wav"), tmp_path / "out.wav", "--weights", scaled)
    assert code == 2 and len(err) == 1 and ("not finite" in err[0] or "louder" in err[0]), err
    assert not (tmp_path / "out.wav").exists() and not _parts(tmp_path)


def test_errors_keep_their_reason_and_the_output_is_checked_first(tmp_path, weights, capsys):
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    code, err, _ = _enhance(capsys, loop, tmp_path / "out.wav", "--weights", weights)
    assert code == 2 and "too many levels of symbolic links" in err[0], err
    if os.geteuid() != 0:
        locked = _wav(tmp_path / "locked.wav")
        locked.chmod(0)
        code, err, _ = _enhance(capsys, locked, tmp_path / "out.wav", "--weights", weights)
        assert code == 2 and "permission denied" in err[0], err
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"\0" * 100)
    code, err, _ = _enhance(capsys, _wav(tmp_path / "in.wav"), blocker / "out.wav", "--weights", bogus)
    assert code == 2 and len(err) == 1 and "cannot write output files here" in err[0], err  # not the weights


def _small_disk(tmp_path: Path) -> None:
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to mount a small tmpfs")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.decode().strip()}")


def test_full_disk_is_one_line_exit_2_and_leaves_nothing(tmp_path, weights):
    _small_disk(tmp_path)
    src = _wav(tmp_path / "in.wav", seconds=10.0)  # 320 KB of output for a 64 KiB disk
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (f"mount -t tmpfs -o size=64k tmpfs {disk} && {sys.executable} -m rtenhance enhance {src} "
              f"{disk}/out.wav --weights {weights}; echo status=$?; ls -a {disk}")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].endswith("out.wav: no space left on device"), done.stderr
    assert "status=2" in done.stdout and done.stdout.split()[-2:] == [".", ".."], done.stdout
