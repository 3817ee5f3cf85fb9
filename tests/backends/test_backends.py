"""Every inference backend equals the eager ``GTCRN.step``: output spectrum and every state tensor, frame by
frame, for the published DNS3 weights on real audio and for random models on synthetic audio.

The reference is the eager step run in float64, i.e. the exact result of the same weights: a float32
eager run is itself off by up to 2.5e-5 on the DNS3 model's convolution caches (peak about 18) and by
1.2e-4 on a random model's output spectrum (peak 48), so two float32 implementations cannot agree to
1e-5 everywhere, but each can be within 1e-5 of the exact value. Tensors whose magnitude exceeds 1 are
compared relative to their peak; tensors bounded by 1 (the GRU states) absolutely; the published
model's output spectrum (peak 37 on mix.wav) also absolutely.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import soundfile as sf
import torch

from rtenhance.backends import BACKENDS, make_stepper, resolve_backend
from rtenhance.backends.native import unavailable_reason
from rtenhance.backends.onnx_graph import build_step_graph
from rtenhance.config import ModelConfig
from rtenhance.dsp.stft import stft
from rtenhance.enhancer import Enhancer
from rtenhance.model.checkpoint import load_model
from rtenhance.model.gtcrn import GTCRN
from tests.conftest import need_shared

SAMPLE_RATE = 16000
SECONDS = 10
TOLERANCE = 1e-5
SCALE_FLOOR = 1.0  # errors are divided by max(SCALE_FLOOR, peak magnitude of the reference tensor)
TORCH_BACKEND_FRAMES = 100  # the eager backend wraps GTCRN.step; a shorter run checks its plumbing
CONCRETE_BACKENDS = [b for b in BACKENDS if b != "auto"]
FAST_BACKENDS = ["native", "onnx"]



def random_model(config: ModelConfig | None = None, seed: int = 0) -> GTCRN:
    """A random-initialised model in eval mode with non-trivial BatchNorm statistics and PReLU slopes."""
    torch.manual_seed(seed)
    model = GTCRN(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
            elif isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(0.05, 0.5)
    return model.eval()


def synthetic_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise plus a gliding tone with a slow amplitude envelope, float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * (200 * t + 150 * t**2)) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    return (tone + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def real_audio() -> np.ndarray:
    x, rate = sf.read(need_shared("reference", "mix.wav"), dtype="float32")
    assert rate == SAMPLE_RATE
    return np.resize(x, SECONDS * SAMPLE_RATE).astype(np.float32)  # 9.77 s looped to 10 s


def frames_of(model: GTCRN, audio: np.ndarray) -> np.ndarray:
    """(T, F, 2) causal STFT frames, as the streaming path produces them."""
    spec = stft(torch.from_numpy(audio)[None], model.config.stft, causal=True)[0]  # (F, T, 2)
    return spec.permute(1, 0, 2).contiguous().numpy()


def relative_error(got: torch.Tensor | np.ndarray, ref: torch.Tensor) -> float:
    """max |got - ref| / max(1, max |ref|)."""
    diff = (torch.as_tensor(got).double() - ref).abs().max()
    return float(diff) / max(SCALE_FLOOR, float(ref.abs().max()))


def assert_backend_matches_eager(model: GTCRN, backend: str, frames: np.ndarray) -> float:
    """Run ``backend`` and the eager float64 ``model.step`` side by side; assert every frame's output and
    state tensors match within ``TOLERANCE`` (relative above magnitude 1). Returns the largest absolute
    output error."""
    stepper = make_stepper(model, backend)
    exact = copy.deepcopy(model).double()
    state = exact.init_state(1)
    worst = {"output": 0.0}
    worst_abs = 0.0
    with torch.inference_mode():
        for frame in frames:
            ref, state = exact.step(torch.from_numpy(frame).double()[None], state)
            out = stepper.step(frame)
            worst["output"] = max(worst["output"], relative_error(out, ref[0]))
            worst_abs = max(worst_abs, float(np.abs(out - ref[0].numpy()).max()))
            got = stepper.stream_state().named_tensors()
            for name, ref_t in state.named_tensors().items():
                worst[name] = max(worst.get(name, 0.0), relative_error(got[name], ref_t))
    bad = {k: f"{v:.3g}" for k, v in worst.items() if v > TOLERANCE}
    assert not bad, f"{backend} differs from eager GTCRN.step over {len(frames)} frames: {bad}"
    return worst_abs


@pytest.fixture(scope="module")
def dns3() -> GTCRN:
    return load_model(need_shared("reference", "gtcrn_dns3.tar"))


@pytest.mark.parametrize("backend", CONCRETE_BACKENDS)
def test_published_dns3_on_real_audio(dns3: GTCRN, backend: str) -> None:
    frames = frames_of(dns3, real_audio())
    if backend == "torch":
        frames = frames[:TORCH_BACKEND_FRAMES]
    worst_abs = assert_backend_matches_eager(dns3, backend, frames)
    assert worst_abs <= TOLERANCE, f"{backend}: output spectrum differs by {worst_abs:.3g}"


@pytest.mark.parametrize("backend", CONCRETE_BACKENDS)
def test_random_model_on_synthetic_audio(backend: str) -> None:
    model = random_model()
    frames = frames_of(model, synthetic_audio(SECONDS))
    if backend == "torch":
        frames = frames[:TORCH_BACKEND_FRAMES]
    assert_backend_matches_eager(model, backend, frames)


OTHER_SHAPES = [
    ModelConfig(erb_low_bins=33, erb_bands=16, channels=8, dpgrnn_blocks=1, gt_dilations=(1, 3)),
    ModelConfig(erb_low_bins=40, erb_bands=30, channels=12, dpgrnn_blocks=0, gt_dilations=(2,)),
    ModelConfig(erb_low_bins=64, erb_bands=65, channels=20, dpgrnn_blocks=3, gt_dilations=(1, 1, 4, 2)),
]


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("config", OTHER_SHAPES, ids=["narrow", "no-dpgrnn", "wide"])
def test_fast_backends_on_other_model_shapes(backend: str, config: ModelConfig) -> None:
    """Our own checkpoints may change the ERB layout (odd and even band counts), width, DPGRNN count and
    dilations."""
    model = random_model(config, seed=1)
    assert_backend_matches_eager(model, backend, frames_of(model, synthetic_audio(2.0, seed=1)))


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_enhancer_fast_backend_equals_torch_backend(backend: str) -> None:
    model = random_model(seed=2)
    audio = synthetic_audio(2.0, seed=2)
    fast = Enhancer(make_stepper(model, backend), model.config.stft).enhance(audio)
    eager = Enhancer(make_stepper(model, "torch"), model.config.stft).enhance(audio)
    assert np.abs(fast - eager).max() <= TOLERANCE


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_reset_returns_to_zero_state(backend: str) -> None:
    model = random_model(seed=3)
    frames = frames_of(model, synthetic_audio(0.5, seed=3))
    stepper = make_stepper(model, backend)
    first = [stepper.step(f).copy() for f in frames]
    stepper.reset()
    again = [stepper.step(f).copy() for f in frames]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))


def test_graph_is_folded_and_merged() -> None:
    """No BatchNorm left; one GRU node per TRA and two per DPGRNN (groups and directions merged)."""
    model = random_model()
    ops = [node.op_type for node in build_step_graph(model).graph.node]
    gt_blocks = 2 * len(model.config.gt_dilations)
    assert "BatchNormalization" not in ops
    assert ops.count("GRU") == gt_blocks + 2 * model.config.dpgrnn_blocks


def test_backend_names() -> None:
    assert resolve_backend("auto") == ("native" if unavailable_reason() is None else "onnx")
    assert resolve_backend("torch") == "torch"
    with pytest.raises(ValueError, match="choose one of"):
        make_stepper(random_model(), "tensorrt")
