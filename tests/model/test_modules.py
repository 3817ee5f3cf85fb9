import torch

from rtenhance.model.modules import DPGRNN, TRA, GTConvBlock, sfe
from tests.conftest import randomised_model

FRAMES = 40


def _frames(block_step, x: torch.Tensor, state: tuple) -> torch.Tensor:
    outs = []
    for t in range(x.shape[2]):
        y, *state = block_step(x[:, :, t : t + 1], *state)
        outs.append(y)
    return torch.cat(outs, dim=2)


def test_sfe_unfolds_neighbours() -> None:
    x = torch.arange(2 * 1 * 5, dtype=torch.float32).reshape(1, 2, 1, 5)
    y = sfe(x)
    assert y.shape == (1, 6, 1, 5)
    assert torch.equal(y[0, 1, 0], x[0, 0, 0])  # channel 0, centre
    assert torch.equal(y[0, 0, 0, 1:], x[0, 0, 0, :-1])  # left neighbour
    assert y[0, 0, 0, 0] == 0


def test_tra_step_equals_forward() -> None:
    torch.manual_seed(0)
    tra = TRA(8).eval()
    x = torch.randn(2, 8, FRAMES, 33)
    with torch.no_grad():
        assert (_frames(tra.step, x, (tra.init_state(2),)) - tra(x)).abs().max() < 1e-5


def test_gtconv_step_equals_forward_both_kinds() -> None:
    model = randomised_model()
    for block in [*model.encoder.gt_blocks, *model.decoder.gt_blocks]:
        x = torch.randn(1, 16, FRAMES, 33)
        with torch.no_grad():
            streamed = _frames(block.step, x, block.init_state(1, 33))
            assert (streamed - block(x)).abs().max() < 1e-5


def test_transposed_gtconv_matches_conv_transpose() -> None:
    """The decoder's causal convolution equals the published ConvTranspose2d on left-padded input."""
    torch.manual_seed(1)
    block = GTConvBlock(16, dilation=2, transposed=True).eval()
    h = torch.randn(1, 16, FRAMES, 33)
    pad = block.cache_frames
    reference = block.depth_act(block.depth_bn(block.depth_conv(torch.nn.functional.pad(h, (0, 0, pad, 0)))))
    ours = block._depthwise(torch.nn.functional.pad(h, (0, 0, pad, 0)))
    assert (reference - ours).abs().max() < 1e-5


def test_dpgrnn_step_equals_forward() -> None:
    torch.manual_seed(2)
    block = DPGRNN(16, 33).eval()
    x = torch.randn(2, 16, FRAMES, 33)
    with torch.no_grad():
        assert (_frames(block.step, x, (block.init_state(2),)) - block(x)).abs().max() < 1e-5
