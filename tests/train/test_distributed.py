"""Distributed training: 2 CPU processes (gloo) train exactly as one process with the same global batch."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from rtenhance.train.distributed import Distributed
from rtenhance.train.loop import LAST, LOG, Trainer
from tests.train.helpers import make_tiny_corpora, tiny_config

WORLD = 2
GLOBAL_BATCH = 4
STEPS = 3
TOLERANCE = 1e-5  # float32 sums in another order (per-rank shares, all-reduced statistics and gradients)
LR = 1e-3  # tiny_config's learning rate (OptimConfig default)
# A convolution bias feeding a BatchNorm has a gradient of exactly zero in exact arithmetic (the
# normalisation removes it); Adam scales the float noise of that zero up to about LR per step, in any
# direction, so those biases (and the running means they shift) can only be compared within LR * steps.
ZERO_GRADIENT_KEYS = re.compile(r"conv\d?\.bias$|bn\d?\.running_mean$")


def _config(runs_dir: Path, name: str):  # type: ignore[no-untyped-def]
    return tiny_config(str(runs_dir), name=name, batch_size=GLOBAL_BATCH, log_every=1, val_every=2, checkpoint_every=1)


def _rank(rank: int, runs_dir: str, rendezvous: str, steps: int, resume: bool) -> None:
    trainer = Trainer(
        _config(Path(runs_dir), "ddp"), make_tiny_corpora(), Distributed(rank, WORLD, rank), init_method=rendezvous
    )
    if resume:
        trainer.resume()
    trainer.run(max_steps=steps, progress=False)
    trainer.dist.stop()


def _two_processes(tmp_path: Path, steps: int, resume: bool = False, tag: str = "a") -> None:
    rendezvous = f"file://{tmp_path / f'rendezvous_{tag}'}"
    mp.start_processes(_rank, args=(str(tmp_path), rendezvous, steps, resume), nprocs=WORLD, start_method="spawn")


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], steps: int) -> None:
    assert a.keys() == b.keys()
    strict = [k for k in a if not ZERO_GRADIENT_KEYS.search(k)]
    assert len(strict) > len(a) / 2
    for key in a:
        atol = TOLERANCE if key in strict else LR * steps
        torch.testing.assert_close(a[key].float(), b[key].float(), rtol=0.0, atol=atol, msg=key)


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_shares_of_the_global_batch_make_the_single_process_batch(tiny_corpora):
    from rtenhance.train.config import AugmentConfig
    from rtenhance.train.mixing import StepBatches

    train = tiny_corpora[0]
    whole = StepBatches(train, AugmentConfig(), 16000, seed=3, batch_size=4, seconds=0.5)[5]
    shares = [StepBatches(train, AugmentConfig(), 16000, 3, 4, 0.5, rank=r, world_size=2)[5] for r in range(2)]
    for i in range(2):
        assert torch.equal(torch.cat([s[i] for s in shares]), whole[i])


def test_two_gloo_processes_equal_one_process_and_resume_with_another_world_size(tmp_path, tiny_corpora):
    _two_processes(tmp_path, STEPS)
    ddp_state = torch.load(tmp_path / "ddp" / LAST, weights_only=True)
    assert ddp_state["step"] == STEPS

    single = Trainer(_config(tmp_path, "single"), tiny_corpora)
    single.run(max_steps=STEPS + 2, progress=False)
    at_steps = Trainer(_config(tmp_path, "single_short"), tiny_corpora)
    at_steps.run(max_steps=STEPS, progress=False)
    _assert_same_weights(ddp_state["model"], at_steps.model.state_dict(), STEPS)
    _assert_same_weights(ddp_state["average"], at_steps.average.state_dict(), STEPS)
    log = (tmp_path / "ddp" / LOG).read_text()
    assert log.count("start step=0") == 1 and "world_size=2" in log  # rank 0 alone logs

    # the 2-process run continues in one process
    resumed = Trainer(_config(tmp_path, "ddp"), tiny_corpora)
    resumed.resume()
    resumed.run(max_steps=STEPS + 2, progress=False)
    _assert_same_weights(resumed.model.state_dict(), single.model.state_dict(), STEPS + 2)

    # and a 1-process run continues in 2 processes
    single_dir = tmp_path / "ddp"
    torch.save(torch.load(tmp_path / "single_short" / LAST, weights_only=True), single_dir / LAST)
    _two_processes(tmp_path, STEPS + 2, resume=True, tag="b")
    _assert_same_weights(torch.load(single_dir / LAST, weights_only=True)["model"], single.model.state_dict(), STEPS + 2)


def test_from_env_reads_torchrun_variables(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert Distributed.from_env() == Distributed(3, 4, 1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK 4"):
        Distributed.from_env()
    assert dataclasses.replace(Distributed(), rank=0).is_main
