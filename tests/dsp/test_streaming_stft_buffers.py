"""The streaming STFT/iSTFT and the Enhancer hop: same results as the offline path, preallocated outputs."""

from __future__ import annotations

import numpy as np
import torch

from rtenhance.backends import make_stepper
from rtenhance.config import StftConfig
from rtenhance.dsp.stft import StreamingIstft, StreamingStft, istft, stft
from rtenhance.enhancer import Enhancer, enhance_offline
from rtenhance.model.gtcrn import GTCRN

CFG = StftConfig()
ROUND_OFF = 1e-6



def noise(hops: int, seed: int = 0) -> np.ndarray:
    """``hops`` hops of white noise, float32."""
    return (0.1 * np.random.default_rng(seed).standard_normal(hops * CFG.hop_samples)).astype(np.float32)


def test_streaming_analysis_equals_causal_stft() -> None:
    x = noise(60)
    hops = x.reshape(-1, CFG.hop_samples)
    analysis = StreamingStft(CFG)
    frames = np.stack([analysis.analyze(h).copy() for h in hops], axis=1)  # (F, T, 2)
    offline = stft(torch.from_numpy(x), CFG, causal=True).numpy()  # (F, T + 1, 2)
    np.testing.assert_allclose(frames, offline[:, : hops.shape[0]], atol=ROUND_OFF)


def test_streaming_synthesis_equals_causal_istft() -> None:
    x = noise(60, seed=1)
    spec = stft(torch.from_numpy(x), CFG, causal=True)  # (F, T, 2)
    synthesis = StreamingIstft(CFG)
    out = np.concatenate([synthesis.synthesize(spec[:, t].numpy()).copy() for t in range(spec.shape[1])])
    delay = CFG.n_fft - CFG.hop_samples
    np.testing.assert_allclose(out[delay : delay + x.shape[0]], x, atol=ROUND_OFF)
    offline = istft(spec, CFG, x.shape[0], causal=True).numpy()
    np.testing.assert_allclose(out[delay : delay + x.shape[0]], offline, atol=ROUND_OFF)


def test_hop_outputs_are_preallocated_buffers() -> None:
    """analyze, synthesize and Enhancer.process hand back the same internal buffer every hop."""
    torch.manual_seed(0)
    enhancer = Enhancer(make_stepper(GTCRN().eval(), "onnx"), CFG)
    analysis, synthesis = StreamingStft(CFG), StreamingIstft(CFG)
    hops = noise(12, seed=2).reshape(-1, CFG.hop_samples)
    frame, samples, processed = analysis.analyze(hops[0]), synthesis.synthesize(analysis.analyze(hops[0])), None
    for h in hops:
        assert analysis.analyze(h) is frame
        assert synthesis.synthesize(frame) is samples
        out = enhancer.process(h)
        assert processed is None or out is processed
        processed = out


def test_enhancer_equals_offline_causal_model() -> None:
    torch.manual_seed(1)
    model = GTCRN().eval()
    x = noise(90, seed=3)[:-100]  # not a whole number of hops
    offline = enhance_offline(model, x, causal=True)
    for backend in ("torch", "onnx"):
        streamed = Enhancer(make_stepper(model, backend), CFG).enhance(x)
        np.testing.assert_allclose(streamed, offline, atol=ROUND_OFF, err_msg=backend)
