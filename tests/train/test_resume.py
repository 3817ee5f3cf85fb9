"""Stopping and resuming a run ends with exactly the parameters of an uninterrupted run."""

from __future__ import annotations

import pytest
import torch

from rtenhance.model.checkpoint import load_model
from rtenhance.train.loop import BEST, LAST, LOG, ResumeError, Trainer
from tests.train.helpers import tiny_config


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_resume_matches_uninterrupted_run(tmp_path, tiny_corpora):
    straight = Trainer(tiny_config(str(tmp_path / "a")), tiny_corpora)
    straight.run(max_steps=6, progress=False)

    first = Trainer(tiny_config(str(tmp_path / "b")), tiny_corpora)
    first.run(max_steps=3, progress=False)
    resumed = Trainer(tiny_config(str(tmp_path / "b")), tiny_corpora)
    resumed.resume()
    assert resumed.step == 3
    resumed.run(max_steps=6, progress=False)

    assert resumed.step == straight.step == 6
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    avg_a, avg_b = straight.average.state_dict(), resumed.average.state_dict()
    for key in avg_a:
        assert torch.equal(avg_a[key], avg_b[key]), key
    assert resumed.scheduler.get_last_lr() == straight.scheduler.get_last_lr()
    assert resumed.best_metric == straight.best_metric and resumed.best_step == straight.best_step == 4


def test_worker_processes_make_the_same_batches(tmp_path, tiny_corpora):
    from rtenhance.train.config import DataConfig

    here = Trainer(tiny_config(str(tmp_path / "a")), tiny_corpora)
    here.run(max_steps=3, progress=False)
    data = DataConfig(segment_seconds=1.0, val_mixtures=2, val_seconds=1.0, workers=2)
    parallel = Trainer(tiny_config(str(tmp_path / "b"), data=data), tiny_corpora)
    parallel.run(max_steps=3, progress=False)
    a, b = here.model.state_dict(), parallel.model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_run_writes_log_last_and_loadable_best(tmp_path, tiny_corpora):
    cfg = tiny_config(str(tmp_path))
    trainer = Trainer(cfg, tiny_corpora)
    trainer.run(max_steps=4, progress=False)
    run_dir = tmp_path / "tiny"
    assert (run_dir / LAST).is_file()
    log = (run_dir / LOG).read_text()
    assert "train step=2 loss=" in log and "val step=4 loss=" in log
    model = load_model(run_dir / BEST)
    assert model.config == cfg.model
    for key, value in model.state_dict().items():
        assert torch.equal(value, trainer.average.model.state_dict()[key]), key


def test_resume_rejects_other_model_shape(tmp_path, tiny_corpora):
    Trainer(tiny_config(str(tmp_path)), tiny_corpora).run(max_steps=1, progress=False)
    other = Trainer(tiny_config(str(tmp_path), model=tiny_config("").model.__class__(channels=12)), tiny_corpora)
    with pytest.raises(ResumeError, match="differs"):
        other.resume()


def test_resume_without_checkpoint_says_so(tmp_path, tiny_corpora):
    with pytest.raises(ResumeError, match="no checkpoint"):
        Trainer(tiny_config(str(tmp_path)), tiny_corpora).resume()


def test_resume_with_another_best_metric_restarts_the_selection(tmp_path, tiny_corpora):
    Trainer(tiny_config(str(tmp_path)), tiny_corpora).run(max_steps=4, progress=False)
    resumed = Trainer(tiny_config(str(tmp_path), best_metric="neg_loss"), tiny_corpora)
    resumed.resume()
    assert resumed.best_step == -1
    resumed.run(max_steps=8, progress=False)
    assert resumed.best_step == 8 and resumed.best_metric < 0


def test_resume_with_another_validation_set_restarts_the_selection(tmp_path, tiny_corpora):
    from rtenhance.train.config import AugmentConfig

    Trainer(tiny_config(str(tmp_path)), tiny_corpora).run(max_steps=4, progress=False)
    same = Trainer(tiny_config(str(tmp_path)), tiny_corpora)
    same.resume()
    assert same.best_step == 4
    other = Trainer(tiny_config(str(tmp_path), augment=AugmentConfig(snr_db=(0.0, 5.0))), tiny_corpora)
    other.resume()
    assert other.best_step == -1
