"""The torch-free weights format: a converted checkpoint gives the same model, plan and profile; the
bundled file is current; hostile or stale files are refused with one reason; loading a PyTorch
checkpoint without PyTorch says what to do."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rtenhance.backends import make_stepper
from rtenhance.backends.native.plan import build_plan
from rtenhance.config import ModelConfig
from rtenhance.model.checkpoint import load_model, save_checkpoint
from rtenhance.weights import MANIFEST, WEIGHTS_DIR, CheckpointError, bundled_weights, file_sha256, load_weights
from rtenhance.weights.convert import convert_checkpoint
from rtenhance.weights.npz_format import META, MAX_FILE_BYTES, PLAN_INTS, load_npz
from tests.conftest import REPO, randomised_model


def _converted(tmp_path: Path, config: ModelConfig | None = None) -> tuple[torch.nn.Module, Path]:
    model = randomised_model(config, seed=3)
    source = tmp_path / "model.pt"
    save_checkpoint(model, source)
    target = tmp_path / "model.npz"
    convert_checkpoint(source, target)
    return model, target


@pytest.mark.parametrize("config", [None, ModelConfig(channels=8, gt_dilations=(1, 3), dpgrnn_blocks=1)])
def test_converted_weights_equal_the_checkpoint(tmp_path: Path, config: ModelConfig | None) -> None:
    model, target = _converted(tmp_path, config)
    weights = load_npz(target)
    assert weights.config == model.config
    for name, tensor in model.state_dict().items():
        np.testing.assert_array_equal(weights.tensors[name], tensor.numpy())
    plan = build_plan(model)
    np.testing.assert_array_equal(weights.plan.ints, plan.ints)
    np.testing.assert_array_equal(weights.plan.blob, plan.blob)
    assert weights.profile["params_total"] == sum(t.numel() for t in model.state_dict().values()
                                                  if t.dtype.is_floating_point) - _bn_stats(model)
    rebuilt = weights.torch_model()
    frames = np.random.default_rng(0).standard_normal((20, model.config.stft.n_bins, 2)).astype(np.float32)
    from_npz, from_model = make_stepper(weights, "native"), make_stepper(rebuilt, "torch")
    for frame in frames:
        np.testing.assert_allclose(from_npz.step(frame), from_model.step(frame), atol=2e-5)


def _bn_stats(model: torch.nn.Module) -> int:
    """Buffers that are statistics, not parameters (running means and variances)."""
    return sum(t.numel() for n, t in model.state_dict().items() if "running_" in n)


def test_bundled_npz_is_the_bundled_checkpoint() -> None:
    manifest = json.loads(MANIFEST.read_text())
    path, digest = bundled_weights()
    assert file_sha256(path) == digest
    weights = load_weights(path, expected_sha256=digest)
    model = load_model(WEIGHTS_DIR / manifest["file"], expected_sha256=manifest["sha256"])
    for name, tensor in model.state_dict().items():
        np.testing.assert_array_equal(weights.tensors[name], tensor.numpy())
    np.testing.assert_array_equal(weights.plan.blob, build_plan(model).blob)


def _rewrite(source: Path, target: Path, change) -> Path:  # type: ignore[no-untyped-def]
    with np.load(source) as data:
        members = {k: data[k] for k in data.files}
    change(members)
    np.savez(target, **members)
    return target


def test_hostile_or_stale_files_are_refused(tmp_path: Path) -> None:
    _, good = _converted(tmp_path)

    def meta_edit(edit):  # type: ignore[no-untyped-def]
        def change(members):  # type: ignore[no-untyped-def]
            meta = json.loads(members[META].tobytes())
            edit(meta)
            members[META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        return change

    def bump_version(members):  # type: ignore[no-untyped-def]
        ints = members[PLAN_INTS].copy()
        ints[0] += 1
        members[PLAN_INTS] = ints

    def far_offset(members):  # type: ignore[no-untyped-def]
        ints = members[PLAN_INTS].copy()
        ints[-1] = 1 << 30
        members[PLAN_INTS] = ints

    cases = {
        "(?i)channels": meta_edit(lambda m: m["config"].update(channels=40000)),
        "state layout": meta_edit(lambda m: m["state_offsets"].update(encoder_conv_0=10**6)),
        "plan version": bump_version,
        "outside": far_offset,
    }
    for reason, change in cases.items():
        with pytest.raises(CheckpointError, match=reason):
            load_npz(_rewrite(good, tmp_path / "bad.npz", change))
    compressed = tmp_path / "compressed.npz"
    with np.load(good) as data:
        np.savez_compressed(compressed, **{k: data[k] for k in data.files})
    with pytest.raises(CheckpointError, match="compressed"):
        load_npz(compressed)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{META: np.array([{"format": "x"}], dtype=object)})
    with pytest.raises(CheckpointError, match="rtenhance weights file|readable"):
        load_npz(pickled)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_npz(truncated)
    huge = tmp_path / "huge.npz"
    with open(huge, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(CheckpointError, match="larger than"):
        load_npz(huge)
    assert zipfile.is_zipfile(good)


def test_pytorch_checkpoint_without_pytorch_says_what_to_do(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(randomised_model(), checkpoint)
    block = ("import sys\nclass NoTorch:\n    def find_spec(self, name, path=None, target=None):\n"
             "        return None\n    def find_module(self, *a): return None\n"
             "sys.modules['torch'] = None\n")
    done = subprocess.run(
        [sys.executable, "-c", block + "from rtenhance.cli import main; raise SystemExit(main(sys.argv[1:]))",
         "enhance", str(REPO / "rtenhance" / "data" / "demo_noisy.wav"), str(tmp_path / "out.wav"),
         "--weights", str(checkpoint)],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs PyTorch" in lines[0] and "rtenhance convert" in lines[0], done.stderr
