import numpy as np
import pytest
import torch

from rtenhance.config import StftConfig
from rtenhance.dsp.stft import StreamingIstft, StreamingStft, causal_frames, istft, stft
from tests.conftest import noise_signal

CFG = StftConfig()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n", [16000, 16001, 255, 1000])
def test_round_trip(causal: bool, n: int) -> None:
    x = torch.from_numpy(noise_signal(n / 16000, seed=n))[:n]
    spec = stft(x, CFG, causal=causal)
    assert spec.shape[-3] == CFG.n_bins and spec.shape[-1] == 2
    y = istft(spec, CFG, n, causal=causal)
    assert y.shape == x.shape
    assert (y - x).abs().max().item() < 1e-6


def test_batched_shapes() -> None:
    x = torch.randn(2, 3, 4000)
    spec = stft(x, CFG, causal=True)
    assert spec.shape == (2, 3, CFG.n_bins, causal_frames(4000, CFG), 2)
    assert (istft(spec, CFG, 4000, causal=True) - x).abs().max().item() < 1e-6


def test_streaming_analysis_equals_causal_offline() -> None:
    x = noise_signal(1.0)
    offline = stft(torch.from_numpy(x), CFG, causal=True).numpy()  # (F, T, 2)
    analysis = StreamingStft(CFG)
    hops = x.shape[0] // CFG.hop_samples
    for k in range(hops):
        frame = analysis.analyze(x[k * CFG.hop_samples : (k + 1) * CFG.hop_samples])
        np.testing.assert_allclose(frame, offline[:, k], atol=1e-4)


def test_streaming_synthesis_equals_causal_offline_delayed() -> None:
    x = noise_signal(1.0)
    spec = stft(torch.from_numpy(x), CFG, causal=True)
    expected = istft(spec, CFG, x.shape[0], causal=True).numpy()
    synthesis = StreamingIstft(CFG)
    out = np.concatenate([synthesis.synthesize(spec[:, k].numpy()).copy() for k in range(spec.shape[1])])
    delay = CFG.n_fft - CFG.hop_samples
    np.testing.assert_allclose(out[delay : delay + x.shape[0]], expected, atol=1e-6)
