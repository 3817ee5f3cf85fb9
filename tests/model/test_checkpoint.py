from pathlib import Path

import pytest
import torch

from rtenhance.config import ModelConfig
from rtenhance.model import GTCRN
from rtenhance.model.checkpoint import CheckpointError, load_model, save_checkpoint
from tests.conftest import need_shared, randomised_model


def test_own_checkpoint_round_trip(tmp_path: Path) -> None:
    model = randomised_model(ModelConfig(channels=8, erb_bands=16))
    path = tmp_path / "m.pt"
    save_checkpoint(model, path, meta={"step": 3})
    loaded = load_model(path)
    assert loaded.config == model.config
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("name", ["gtcrn_dns3.tar", "gtcrn_vctk.tar"])
def test_published_checkpoints_load_strictly(name: str) -> None:
    path = need_shared("reference", name)
    model = load_model(path)
    published = torch.load(path, weights_only=True)["model"]
    assert len(model.state_dict()) == len(published)
    assert torch.equal(model.state_dict()["dpgrnns.1.inter_fc.weight"], published["dpgrnn2.inter_fc.weight"])
    assert torch.equal(
        model.state_dict()["encoder.en_convs.0.conv.weight"], published["encoder.en_convs.0.conv.weight"]
    )


def _expect_error(path: Path, *fragments: str) -> None:
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.pt", "no such file")


def test_truncated_file(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    save_checkpoint(GTCRN(), good)
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(good.read_bytes()[:5000])
    _expect_error(bad, "not a readable PyTorch checkpoint")


def test_foreign_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    _expect_error(text, "not a readable PyTorch checkpoint")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    _expect_error(other, "not a GTCRN checkpoint")
    listing = tmp_path / "list.pt"
    torch.save([1, 2], listing)
    _expect_error(listing, "expected a dict")


def test_wrong_keys_and_shapes(tmp_path: Path) -> None:
    state = {f"encoder.{k}": v for k, v in GTCRN().state_dict().items()}
    path = tmp_path / "renamed.tar"
    torch.save({"model": state}, path)
    _expect_error(path, "missing", "unexpected")
    state = GTCRN().state_dict()
    state["dpgrnn1.intra_fc.weight"] = torch.zeros(3, 3)
    state = {k.replace("dpgrnns.0.", "dpgrnn1.").replace("dpgrnns.1.", "dpgrnn2."): v for k, v in state.items()}
    state["erb.erb_fc.weight"] = state.pop("erb.compress_weight")
    state["erb.ierb_fc.weight"] = state.pop("erb.expand_weight")
    path = tmp_path / "shape.tar"
    torch.save({"model": state}, path)
    _expect_error(path, "dpgrnns.0.intra_fc.weight", "shape")


def test_unsafe_pickle_is_refused(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self):  # noqa: D105
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, path)
    _expect_error(path, "not a readable PyTorch checkpoint")


def test_sha256_checked(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(GTCRN(), path)
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(path, expected_sha256="0" * 64)


def test_hostile_configs_are_refused_before_any_allocation(tmp_path: Path) -> None:
    """A small file whose config asks for a huge model (channels 40000 used 24 GB, n_fft 2**25 8.7 GB), and
    one whose config is at every bound but whose tensors do not fit it: both refused, and the peak RSS of a
    subprocess grows by less than the 63 MB the bounded model would take (it is never built)."""
    import json
    import subprocess
    import sys

    from rtenhance.config import to_dict
    from tests.conftest import REPO

    small = GTCRN(ModelConfig(channels=8, dpgrnn_blocks=8, gt_dilations=(1,) * 8))
    paths = []
    configs = [
        {"channels": 40000},
        {"stft": {"sample_rate": 16000, "n_fft": 2**25, "hop_samples": 2**24}},
        {"stft": {"sample_rate": 16000, "n_fft": 4096, "hop_samples": 2048}, "erb_low_bins": 1000,
         "erb_bands": 1049, "channels": 256, "dpgrnn_blocks": 8, "gt_dilations": [64] * 8},
    ]
    for i, config in enumerate(configs):
        path = tmp_path / f"hostile{i}.pt"
        torch.save({"format": "rtenhance-gtcrn", "version": 1, "config": {**to_dict(small.config), **config},
                    "state_dict": small.state_dict()}, path)
        paths.append(str(path))
    code = (
        "import json, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, 2 << 30))\n"
        "from rtenhance.model.checkpoint import CheckpointError, load_model\n"
        "import torch\n"
        "torch.zeros(1)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "messages = []\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        load_model(path)\n"
        "    except CheckpointError as exc:\n"
        "        messages.append(str(exc))\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(json.dumps({'messages': messages, 'grown_mb': grown / 1024}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-800:]
    report = json.loads(result.stdout)
    assert len(report["messages"]) == 3
    assert "model.channels: 40000 is not allowed" in report["messages"][0]
    assert "stft.n_fft: 33554432 is not allowed" in report["messages"][1]
    assert "has shape" in report["messages"][2] and "the model expects" in report["messages"][2]
    assert report["grown_mb"] < 30, report
