import numpy as np
import torch

from rtenhance.dsp.erb import ErbBands, erb_filterbank, erb_to_hz, hz_to_erb
from tests.conftest import need_shared


def test_erb_scale_inverse() -> None:
    f = np.array([0.0, 100.0, 1000.0, 8000.0])
    np.testing.assert_allclose(erb_to_hz(hz_to_erb(f)), f, atol=1e-9)


def test_filterbank_shape_and_coverage() -> None:
    bank = erb_filterbank(65, 64, 512, 16000)
    assert bank.shape == (64, 192)
    assert (bank >= 0).all()
    # every high bin is covered by some band, and overlapping triangles sum to about one
    np.testing.assert_allclose(bank.sum(axis=0), 1.0, atol=1e-6)


def test_compress_expand_shapes() -> None:
    erb = ErbBands(65, 64, 512, 16000)
    x = torch.randn(2, 3, 5, 257)
    bands = erb.compress(x)
    assert bands.shape == (2, 3, 5, 129)
    assert torch.equal(bands[..., :65], x[..., :65])
    assert erb.expand(bands).shape == (2, 3, 5, 257)


def test_matches_published_matrices() -> None:
    state = torch.load(need_shared("reference", "gtcrn_dns3.tar"), weights_only=True)["model"]
    erb = ErbBands(65, 64, 512, 16000)
    assert (erb.compress_weight - state["erb.erb_fc.weight"]).abs().max().item() <= 1e-6
    assert (erb.expand_weight - state["erb.ierb_fc.weight"]).abs().max().item() <= 1e-6
