"""Fine-tuning with ``init_from``: the run starts exactly at the given weights, with a fresh optimizer."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rtenhance.config import ModelConfig
from rtenhance.dsp.stft import stft
from rtenhance.model.checkpoint import load_model, save_checkpoint
from rtenhance.train.config import OptimConfig
from rtenhance.train.init_from import InitError
from rtenhance.train.loop import Trainer
from tests.conftest import need_shared, noise_signal
from tests.train.helpers import tiny_config

WARMUP = 10


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _spec(config: ModelConfig) -> torch.Tensor:
    return stft(torch.from_numpy(noise_signal(1.0))[None], config.stft, causal=True)  # (1, F, T, 2)


def test_fine_tuning_dns3_starts_at_the_published_model(tmp_path, tiny_corpora):
    published = need_shared("reference", "gtcrn_dns3.tar")
    reference = load_model(published)
    optim = OptimConfig(lr=1e-4, warmup_steps=WARMUP)
    cfg = tiny_config(str(tmp_path), model=ModelConfig(), init_from=str(published), optim=optim, name="ft")
    trainer = Trainer(cfg, tiny_corpora)
    spec = _spec(cfg.model)
    with torch.no_grad():
        expected = reference(spec)
        assert torch.equal(trainer.model.eval()(spec), expected)
    for name, value in reference.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], value), name
        assert torch.equal(trainer.average.model.state_dict()[name], value), name
    assert trainer.optimizer.state_dict()["state"] == {}  # a fresh optimizer
    assert trainer.scheduler.get_last_lr()[0] == pytest.approx(optim.lr / WARMUP)  # warm-up from a low rate

    trainer.run(max_steps=4, progress=False)
    assert trainer.step == 4
    moved = [not torch.equal(a, b) for a, b in zip(trainer.model.state_dict().values(), reference.state_dict().values())]
    assert any(moved)
    best = torch.load(tmp_path / "ft" / "best.pt", weights_only=True)
    assert best["meta"]["init_from"]["path"] == str(published)
    assert (tmp_path / "ft" / "train.log").read_text().count(f"init_from={published}") == 1


def test_resumed_fine_tuning_keeps_its_origin(tmp_path, tiny_corpora):
    start = tmp_path / "start.pt"
    cfg = tiny_config(str(tmp_path), name="base")
    save_checkpoint(Trainer(cfg, tiny_corpora).model, start)
    first = Trainer(dataclasses.replace(cfg, name="ft", init_from=str(start)), tiny_corpora)
    first.run(max_steps=2, progress=False)
    resumed = Trainer(dataclasses.replace(cfg, name="ft"), tiny_corpora)
    resumed.resume()
    assert resumed.cfg.init_from == str(start) and resumed.init_sha256 == first.init_sha256 != ""


def test_init_from_another_model_shape_is_refused(tmp_path, tiny_corpora):
    published = need_shared("reference", "gtcrn_dns3.tar")
    with pytest.raises(InitError, match="differs from the config's"):
        Trainer(tiny_config(str(tmp_path), init_from=str(published)), tiny_corpora)
    with pytest.raises(InitError, match="no such file"):
        Trainer(tiny_config(str(tmp_path), init_from=str(tmp_path / "missing.pt")), tiny_corpora)
