"""Cost of a GTCRN: parameters and multiply-accumulates per layer, beside the cost without grouping.

MACs are counted from one real forward pass with the conventions of ``ptflops`` (the counter the GTCRN
paper used for its 33.0 MMAC/s): convolutions and linear layers count their multiply-accumulates,
GRUs their gate matmuls plus element-wise gate work, BatchNorm/LayerNorm two operations per element and
PReLU one. Transposed convolutions are counted at their output positions (zero insertion plus a
direct convolution), which is how the published figure was counted. "Without grouping" is what the same layer would cost as a dense layer of the same input and
output widths: a grouped or depthwise convolution as a full one, each grouped GRU pair as one GRU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rtenhance.model.gtcrn import GTCRN
from rtenhance.model.modules import GRNN, GTConvBlock

PROFILE_SECONDS = 1.0  # length of the signal whose forward pass is counted


@dataclass
class LayerCost:
    """Cost of one top-level layer.

    Attributes:
        name: module path, e.g. ``encoder.en_convs.2``.
        params: trainable parameters.
        fixed_params: fixed (untrained) weights, the ERB matrices.
        dense_params: trainable parameters of the same layer without grouping.
        macs_per_second: multiply-accumulates per second of audio.
        dense_macs_per_second: the same without grouping.
    """

    name: str
    params: int = 0
    fixed_params: int = 0
    dense_params: int = 0
    macs_per_second: float = 0.0
    dense_macs_per_second: float = 0.0


def _gru_macs(gru: nn.GRU, batch: int, steps: int) -> tuple[float, float]:
    """(gate matmul MACs, element-wise MACs) of a GRU over a (batch, steps) input, all directions."""
    directions = 2 if gru.bidirectional else 1
    h = gru.hidden_size
    matmul = 3 * h * (gru.input_size + h)
    elementwise = h + 3 * h + 3 * h + (6 * h if gru.bias else 0)
    scale = batch * steps * directions
    return float(matmul * scale), float(elementwise * scale)


def _leaf_cost(module: nn.Module, inp: torch.Tensor, out: torch.Tensor, in_grnn: bool) -> tuple[float, float]:
    """(MACs, MACs without grouping) of one leaf module call."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        k = module.kernel_size[0] * module.kernel_size[1]
        per_position = k * module.in_channels * module.out_channels // module.groups
        positions = out.shape[0] * out.shape[2] * out.shape[3]
        bias = module.out_channels * positions if module.bias is not None else 0
        return float(per_position * positions + bias), float(per_position * module.groups * positions + bias)
    if isinstance(module, nn.Linear):
        macs = float(inp.numel() * module.out_features + (module.out_features if module.bias is not None else 0))
        return macs, macs
    if isinstance(module, nn.GRU):
        steps = inp.shape[1] if module.batch_first else inp.shape[0]
        batch = inp.shape[0] if module.batch_first else inp.shape[1]
        matmul, elementwise = _gru_macs(module, batch, steps)
        groups = 2 if in_grnn else 1
        return matmul + elementwise, matmul * groups + elementwise
    if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
        macs = float(inp.numel() * 2)
        return macs, macs
    if isinstance(module, nn.PReLU):
        return float(out.numel()), float(out.numel())
    return 0.0, 0.0


def _depthwise_cost(block: GTConvBlock, out: torch.Tensor) -> tuple[float, float]:
    """(MACs, MACs without grouping) of a GTConv block's depthwise convolution producing ``out``.

    The block computes it functionally (a causal convolution), so it is counted from its output.
    """
    conv = block.depth_conv
    k = conv.kernel_size[0] * conv.kernel_size[1]
    channels = conv.weight.shape[0]
    positions = out.shape[0] * out.shape[2] * out.shape[3]
    macs = float(k * channels * positions + channels * positions)
    return macs, macs + float(k * channels * (channels - 1) * positions)


def _dense_params(module: nn.Module, in_grnn: bool) -> int:
    own = sum(p.numel() for p in module.parameters(recurse=False))
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return module.weight.numel() * module.groups + (module.bias.numel() if module.bias is not None else 0)
    if isinstance(module, nn.GRU) and in_grnn:
        weights = sum(p.numel() for n, p in module.named_parameters() if n.startswith("weight"))
        return own + weights  # one GRU over both halves has twice the weights of each half
    return own


def top_level_layers(model: GTCRN) -> list[tuple[str, nn.Module]]:
    """The layers a profile reports: every encoder/decoder block and every DPGRNN."""
    layers: list[tuple[str, nn.Module]] = []
    layers += [(f"encoder.en_convs.{i}", m) for i, m in enumerate(model.encoder.en_convs)]
    layers += [(f"dpgrnns.{i}", m) for i, m in enumerate(model.dpgrnns)]
    layers += [(f"decoder.de_convs.{i}", m) for i, m in enumerate(model.decoder.de_convs)]
    return layers


def profile_model(model: GTCRN) -> list[LayerCost]:
    """Per-layer cost of ``model`` (the ERB front and back end first, as layer ``erb``)."""
    cfg = model.config
    frames_per_second = cfg.stft.sample_rate / cfg.stft.hop_samples
    n_frames = int(PROFILE_SECONDS * frames_per_second)
    grnn_children = {id(m) for g in model.modules() if isinstance(g, GRNN) for m in g.children()}

    erb = LayerCost("erb", fixed_params=sum(b.numel() for b in model.erb.buffers()))
    high_bins, bands = model.erb.compress_weight.shape[1], model.erb.compress_weight.shape[0]
    features, mask_channels = 3, 2
    erb.macs_per_second = erb.dense_macs_per_second = float(
        (features + mask_channels) * high_bins * bands * frames_per_second
    )
    costs = [erb]
    hooks = []
    for name, layer in top_level_layers(model):
        cost = LayerCost(name)
        costs.append(cost)
        for leaf in layer.modules():
            if next(leaf.children(), None) is not None:
                continue
            in_grnn = id(leaf) in grnn_children
            cost.params += sum(p.numel() for p in leaf.parameters())
            cost.dense_params += _dense_params(leaf, in_grnn)

            def hook(m: nn.Module, args: tuple, out: object, c: LayerCost = cost, g: bool = in_grnn) -> None:
                first = out[0] if isinstance(out, tuple) else out
                macs, dense = _leaf_cost(m, args[0], first, g)  # type: ignore[arg-type]
                c.macs_per_second += macs * frames_per_second / n_frames
                c.dense_macs_per_second += dense * frames_per_second / n_frames

            hooks.append(leaf.register_forward_hook(hook))
        for block in layer.modules():
            if isinstance(block, GTConvBlock):

                def depth_hook(m: nn.Module, args: tuple, out: object, c: LayerCost = cost, b: GTConvBlock = block) -> None:
                    macs, dense = _depthwise_cost(b, args[0])
                    c.macs_per_second += macs * frames_per_second / n_frames
                    c.dense_macs_per_second += dense * frames_per_second / n_frames

                hooks.append(block.depth_bn.register_forward_hook(depth_hook))
    try:
        with torch.inference_mode():
            model(torch.randn(1, cfg.stft.n_bins, n_frames, 2))
    finally:
        for h in hooks:
            h.remove()
    return costs


def totals(costs: list[LayerCost]) -> dict[str, float]:
    """Sums over layers: ``params_trainable``, ``params_total`` (with the fixed ERB matrices),
    ``mmac_per_second``, and the same without grouping."""
    params = sum(c.params for c in costs)
    fixed = sum(c.fixed_params for c in costs)
    return {
        "params_trainable": params,
        "params_total": params + fixed,
        "params_dense": sum(c.dense_params for c in costs) + fixed,
        "mmac_per_second": sum(c.macs_per_second for c in costs) / 1e6,
        "mmac_per_second_dense": sum(c.dense_macs_per_second for c in costs) / 1e6,
    }
