"""The weight average follows the trained model by an exponential moving average."""

from __future__ import annotations

import pytest
import torch

from rtenhance.config import ConfigError, ModelConfig
from rtenhance.model.gtcrn import GTCRN
from rtenhance.train.config import OptimConfig
from rtenhance.train.ema import WeightAverage


def _perturbed(model: GTCRN, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen))


def test_average_is_the_exponential_moving_average_of_the_weights():
    torch.manual_seed(0)
    model = GTCRN(ModelConfig())
    average = WeightAverage(model, decay=0.9)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    _perturbed(model, 1)
    model.state_dict()["encoder.en_convs.0.bn.num_batches_tracked"].fill_(5)
    average.update(model)
    for key, value in average.model.state_dict().items():
        new = model.state_dict()[key]
        expected = 0.9 * start[key] + 0.1 * new if value.is_floating_point() else new
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-6, msg=key)
    assert not average.model.training
    assert not any(p.requires_grad for p in average.model.parameters())


def test_zero_decay_tracks_the_model_exactly_and_state_round_trips():
    model = GTCRN(ModelConfig())
    average = WeightAverage(model, decay=0.0)
    _perturbed(model, 2)
    average.update(model)
    for key, value in average.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    other = WeightAverage(GTCRN(ModelConfig()), decay=0.0)
    other.load_state_dict(average.state_dict())
    for key, value in other.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_bad_decay_names_the_key():
    with pytest.raises(ConfigError, match="optim.ema_decay"):
        OptimConfig(ema_decay=1.0)
