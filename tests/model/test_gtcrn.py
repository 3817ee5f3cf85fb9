import pytest
import torch

from rtenhance.config import ModelConfig, StftConfig
from rtenhance.dsp.stft import stft
from rtenhance.model import GTCRN, StreamState
from tests.conftest import noise_signal, randomised_model

CFG = StftConfig()


def _stream(model: GTCRN, spec: torch.Tensor) -> torch.Tensor:
    state = model.init_state(spec.shape[0])
    outs = []
    for t in range(spec.shape[2]):
        out, state = model.step(spec[:, :, t], state)
        outs.append(out)
    return torch.stack(outs, dim=2)


def test_step_equals_forward_10s() -> None:
    model = randomised_model()
    spec = stft(torch.from_numpy(noise_signal(10.0))[None], CFG, causal=True)  # (1, 257, T, 2)
    with torch.no_grad():
        offline = model(spec)
        streamed = _stream(model, spec)
    assert offline.shape == spec.shape
    assert (streamed - offline).abs().max().item() < 1e-5


def test_causality() -> None:
    model = randomised_model(seed=3)
    x = noise_signal(3.0)
    spec_a = stft(torch.from_numpy(x)[None], CFG, causal=True)
    spec_b = spec_a.clone()
    t = 100
    spec_b[:, :, t:] = torch.randn_like(spec_b[:, :, t:])
    with torch.no_grad():
        ya, yb = model(spec_a), model(spec_b)
    assert torch.equal(ya[:, :, :t], yb[:, :, :t])
    assert not torch.allclose(ya[:, :, t:], yb[:, :, t:])


def test_step_does_not_mutate_inputs() -> None:
    model = randomised_model()
    state = model.init_state(1)
    for _ in range(3):
        _, state = model.step(torch.randn(1, 257, 2), state)
    before = state.clone().named_tensors()
    frame = torch.randn(1, 257, 2)
    frame_copy = frame.clone()
    with torch.no_grad():
        _, new_state = model.step(frame, state)
    assert torch.equal(frame, frame_copy)
    for name, tensor in state.named_tensors().items():
        assert torch.equal(tensor, before[name]), name
    assert any(not torch.equal(a, b) for a, b in zip(new_state.named_tensors().values(), before.values()))


def test_state_shapes_are_documented_ones() -> None:
    shapes = {k: tuple(v.shape) for k, v in GTCRN().init_state(2).named_tensors().items()}
    assert shapes["encoder_conv_0"] == (2, 16, 2, 33)
    assert shapes["encoder_conv_2"] == (2, 16, 10, 33)
    assert shapes["decoder_conv_0"] == (2, 16, 10, 33)
    assert shapes["encoder_tra_1"] == (1, 2, 16)
    assert shapes["dpgrnn_inter_1"] == (2, 33, 16)
    assert len(shapes) == 3 + 3 + 3 + 3 + 2
    state = GTCRN().init_state(1)
    assert StreamState.from_named_tensors(state.named_tensors()).named_tensors().keys() == state.named_tensors().keys()


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(erb_bands=16),
        ModelConfig(channels=8, dpgrnn_blocks=1),
        ModelConfig(erb_low_bins=40, erb_bands=40, gt_dilations=(1, 2)),
    ],
    ids=["erb16", "narrow", "even-bands"],
)
def test_variants_stream_like_offline(config: ModelConfig) -> None:
    model = randomised_model(config)
    spec = stft(torch.from_numpy(noise_signal(1.0))[None], CFG, causal=True)
    with torch.no_grad():
        assert (_stream(model, spec) - model(spec)).abs().max().item() < 1e-5
