"""Weights of a GTCRN rewritten for fewer, larger inference operations.

Everything here is exact algebra on the trained weights (up to float32 rounding):
- BatchNorm (eval mode) folded into the convolution before it;
- the subband feature extraction (SFE) before a 1x1 convolution folded into one (1, 3) convolution;
- the two grouped GRUs of a GRNN (and both directions of a bidirectional one) merged into one GRU with
  block-diagonal weights, in ONNX layout (gates z, r, h; ``linear_before_reset``);
- the ERB merge and the pass-through of the low bins as one matrix each way.

Arrays are float32 NumPy; shapes follow ONNX conventions: Conv weight (out, in / groups, kH, kW),
ConvTranspose weight (in, out / groups, kH, kW), GRU W (dirs, 3H, In), R (dirs, 3H, H), B (dirs, 6H).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rtenhance.dsp.erb import ErbBands
from rtenhance.model.modules import SFE_NEIGHBOURS, GTConvBlock

GRU_GATES = 3  # update (z), reset (r), candidate (h)
_TORCH_TO_ONNX_GATES = (1, 0, 2)  # PyTorch stacks gates r, z, n; ONNX stacks z, r, h


def as_f64(t: torch.Tensor) -> np.ndarray:
    """A parameter or buffer as a float64 NumPy array (folding is done in float64, then rounded once)."""
    return t.detach().cpu().double().numpy()


def as_f32(t: torch.Tensor) -> np.ndarray:
    """A parameter or buffer as a contiguous float32 NumPy array."""
    return _f32(as_f64(t))


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def bn_affine(bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale, shift) of an eval-mode BatchNorm: y = x * scale + shift (float64)."""
    scale = as_f64(bn.weight) / np.sqrt(as_f64(bn.running_var) + bn.eps)
    return scale, as_f64(bn.bias) - as_f64(bn.running_mean) * scale


def fold_conv(weight: np.ndarray, bias: np.ndarray, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm after a Conv: weight (out, in/g, kH, kW), bias (out,) -> folded float32 (weight, bias)."""
    scale, shift = bn_affine(bn)
    return _f32(weight * scale[:, None, None, None]), _f32(bias * scale + shift)


def fold_conv_transpose(
    weight: np.ndarray, bias: np.ndarray, bn: nn.BatchNorm2d, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm after a ConvTranspose: weight (in, out/g, kH, kW), bias (out,) -> folded (weight, bias)."""
    scale, shift = bn_affine(bn)
    c_in, out_per_group, kh, kw = weight.shape
    grouped = weight.reshape(groups, c_in // groups, out_per_group, kh, kw)  # (g, in/g, out/g, kH, kW)
    grouped = grouped * scale.reshape(groups, 1, out_per_group, 1, 1)
    return _f32(grouped.reshape(weight.shape)), _f32(bias * scale + shift)


def prelu_slope(act: nn.Module) -> np.ndarray:
    """Slope of a PReLU as a (channels or 1, 1, 1) array broadcasting over (1, C, T, F)."""
    slope = as_f64(act.weight)  # type: ignore[arg-type]
    return _f32(slope.reshape(-1, 1, 1))


def erb_matrices(erb: ErbBands, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(compress (n_bins, bands), expand (bands, n_bins)): the low bins pass through, the rest is ERB."""
    low = erb.low_bins
    comp = as_f64(erb.compress_weight)  # (erb_bands, n_bins - low)
    exp = as_f64(erb.expand_weight)  # (n_bins - low, erb_bands)
    bands = low + comp.shape[0]
    compress = np.zeros((n_bins, bands))
    compress[np.arange(low), np.arange(low)] = 1.0
    compress[low:, low:] = comp.T
    expand = np.zeros((bands, n_bins))
    expand[np.arange(low), np.arange(low)] = 1.0
    expand[low:, low:] = exp.T
    return _f32(compress), _f32(expand)


def sfe_weight(channels: int) -> np.ndarray:
    """Fixed (channels * 3, channels, 1, 3) Conv weight computing ``sfe`` (with padding 1 over bands)."""
    w = np.zeros((channels * SFE_NEIGHBOURS, channels, 1, SFE_NEIGHBOURS), dtype=np.float32)
    for c in range(channels):
        for k in range(SFE_NEIGHBOURS):
            w[c * SFE_NEIGHBOURS + k, c, 0, k] = 1.0
    return w


class GTConvWeights:
    """Folded weights of one GTConv block, all as plain convolutions over (1, C, T, F).

    Attributes:
        point_in: (C, C, 1, 3) weight and (C,) bias: SFE + pointwise conv + BN on the first half of the
            channels (zero weights on the second half, so the block needs no split before it).
        point_in_act, depth_act: the PReLU modules after them.
        depth: (C, 1, 3, 3) depthwise causal weight (flipped for the decoder's transposed blocks) + bias.
        point_out: (C/2, C, 1, 1) weight + bias: pointwise conv + BN.
        tra_w, tra_r, tra_b: the TRA GRU (ONNX layout, input scaled by 1 / bands so that it takes the
            energy summed, not averaged, over bands).
        tra_fc, tra_fc_b: the TRA output Linear as a (C/2, C, 1, 1) 1x1 convolution and its bias.
        dilation: temporal dilation of the depthwise convolution (its cache holds 2 * dilation frames).
        channels, half: C and C / 2.
    """

    def __init__(self, block: GTConvBlock, bands: int) -> None:
        conv1 = as_f64(block.point_conv1.weight)[:, :, 0, 0]
        if block.transposed:
            conv1 = conv1.T  # ConvTranspose 1x1 weight is (in, out)
        channels, sfe_in = conv1.shape
        half = sfe_in // SFE_NEIGHBOURS
        kernel = np.zeros((channels, channels, 1, SFE_NEIGHBOURS))
        kernel[:, :half, 0, :] = conv1.reshape(channels, half, SFE_NEIGHBOURS)
        self.point_in, self.point_in_bias = fold_conv(kernel, as_f64(block.point_conv1.bias), block.point_bn1)
        self.point_in_act = block.point_act

        depth = as_f64(block.depth_conv.weight)  # (C, 1, kT, kF) for both module kinds
        if block.transposed:
            depth = depth[:, :, ::-1, ::-1]
        self.depth, self.depth_bias = fold_conv(depth, as_f64(block.depth_conv.bias), block.depth_bn)
        self.depth_act = block.depth_act
        self.dilation = block.dilation

        conv2 = as_f64(block.point_conv2.weight)[:, :, 0, 0]
        if block.transposed:
            conv2 = conv2.T
        self.point_out, self.point_out_bias = fold_conv(
            conv2[:, :, None, None], as_f64(block.point_conv2.bias), block.point_bn2
        )

        self.tra_w, self.tra_r, self.tra_b = gru_to_onnx([block.tra.att_gru], input_scale=1.0 / bands)
        self.tra_fc = _f32(as_f64(block.tra.att_fc.weight)[:, :, None, None])
        self.tra_fc_b = _f32(as_f64(block.tra.att_fc.bias))
        self.half = half
        self.channels = channels


def gru_to_onnx(
    grus: list[nn.GRU], input_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge grouped GRUs into one ONNX GRU with block-diagonal weights.

    Group g reads inputs [g * In, (g + 1) * In) and owns hidden units [g * H, (g + 1) * H) of every
    direction. For a bidirectional group the ONNX output (dirs, H_total) orders hidden units as
    (direction, group, unit).

    Args:
        grus: the groups' ``nn.GRU`` (one layer, same sizes, same directionality).
        input_scale: multiplies the input weights (folds a constant input scaling).

    Returns:
        W (dirs, 3 * G * H, G * In), R (dirs, 3 * G * H, G * H), B (dirs, 6 * G * H), float32.
    """
    dirs = 2 if grus[0].bidirectional else 1
    groups = len(grus)
    hidden, inputs = grus[0].hidden_size, grus[0].input_size
    hm, im = groups * hidden, groups * inputs
    w = np.zeros((dirs, GRU_GATES, hm, im))
    r = np.zeros((dirs, GRU_GATES, hm, hm))
    b = np.zeros((dirs, 2, GRU_GATES, hm))
    for d in range(dirs):
        suffix = "_l0_reverse" if d else "_l0"
        for g, gru in enumerate(grus):
            units = slice(g * hidden, (g + 1) * hidden)  # this group's rows of each gate and its hidden columns
            cols_in = slice(g * inputs, (g + 1) * inputs)
            w_ih = as_f64(getattr(gru, "weight_ih" + suffix)).reshape(GRU_GATES, hidden, inputs) * input_scale
            w_hh = as_f64(getattr(gru, "weight_hh" + suffix)).reshape(GRU_GATES, hidden, hidden)
            b_ih = as_f64(getattr(gru, "bias_ih" + suffix)).reshape(GRU_GATES, hidden)
            b_hh = as_f64(getattr(gru, "bias_hh" + suffix)).reshape(GRU_GATES, hidden)
            for onnx_gate, torch_gate in enumerate(_TORCH_TO_ONNX_GATES):
                w[d, onnx_gate, units, cols_in] = w_ih[torch_gate]
                r[d, onnx_gate, units, units] = w_hh[torch_gate]
                b[d, 0, onnx_gate, units] = b_ih[torch_gate]
                b[d, 1, onnx_gate, units] = b_hh[torch_gate]
    return (
        _f32(w.reshape(dirs, GRU_GATES * hm, im)),
        _f32(r.reshape(dirs, GRU_GATES * hm, hm)),
        _f32(b.reshape(dirs, 2 * GRU_GATES * hm)),
    )


def directions_side_by_side(
    w: np.ndarray, r: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bidirectional ONNX GRU as one forward GRU over [x[t], x[T - 1 - t]].

    The two directions become two blocks of one hidden state (direction-major), so the recurrence runs
    T steps instead of 2T. Output step t then holds [forward(t), backward(T - 1 - t)].

    Args:
        w, r, b: bidirectional ONNX weights (2, 3H, In), (2, 3H, H), (2, 6H).

    Returns:
        Forward ONNX weights (1, 6H, 2 In), (1, 6H, 2H), (1, 12H).
    """
    hidden, inputs = r.shape[-1], w.shape[-1]
    w_out = np.zeros((GRU_GATES, 2, hidden, 2, inputs), dtype=np.float32)
    r_out = np.zeros((GRU_GATES, 2, hidden, 2, hidden), dtype=np.float32)
    b_out = np.zeros((2, GRU_GATES, 2, hidden), dtype=np.float32)
    for d in range(2):
        w_out[:, d, :, d, :] = w[d].reshape(GRU_GATES, hidden, inputs)
        r_out[:, d, :, d, :] = r[d].reshape(GRU_GATES, hidden, hidden)
        b_out[:, :, d, :] = b[d].reshape(2, GRU_GATES, hidden)
    rows = GRU_GATES * 2 * hidden
    return w_out.reshape(1, rows, 2 * inputs), r_out.reshape(1, rows, 2 * hidden), b_out.reshape(1, 2 * rows)


def bidirectional_output_order(groups: int, hidden: int) -> np.ndarray:
    """For each merged bidirectional output unit (direction, group, unit), its index in the grouped
    layout (group, direction, unit) that ``GRNN`` concatenates."""
    order = [g * 2 * hidden + d * hidden + j for d in range(2) for g in range(groups) for j in range(hidden)]
    return np.array(order, dtype=np.int64)
