"""``GTCRN.step`` as a small ONNX graph, built directly from the (folded) weights of any loaded model.

The graph computes exactly what ``GTCRN.step`` computes for one stream (batch 1), with far fewer
operations than a traced export (about 160 nodes against the official export's 415): BatchNorm folded
into convolutions, PReLU as LeakyRelu (fused into its convolution by onnxruntime), the grouped GRUs and
both directions of the intra-band GRU merged into one block-diagonal GRU node each, SFE folded into the
1x1 convolution after it, the ERB mapping (with the pass-through bins) as one matrix product each way,
and the complex mask applied as one product and one small matrix product.

Interface (all float32):
- input ``spec`` (F, 2): the noisy frame (real, imaginary), F = n_fft // 2 + 1;
- one input per state tensor, named and shaped as ``StreamState.named_tensors()`` for batch 1;
- output ``enhanced`` (F, 2), and for each state input ``<name>`` the next state ``<name>_out``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from rtenhance.backends.folding import (
    GTConvWeights,
    as_f32,
    as_f64,
    bidirectional_output_order,
    directions_side_by_side,
    erb_matrices,
    fold_conv,
    fold_conv_transpose,
    gru_to_onnx,
    prelu_slope,
    sfe_weight,
)
from rtenhance.model.gtcrn import GTCRN, INPUT_FEATURES, MAGNITUDE_EPS
from rtenhance.model.modules import BAND_KERNEL, BAND_STRIDE, LAYER_NORM_EPS, SFE_NEIGHBOURS, ConvBlock, DPGRNN

ONNX_OPSET = 17  # LayerNormalization needs 17
INT64_MAX = np.iinfo(np.int64).max  # "to the end" in Slice
INT64_MIN = np.iinfo(np.int64).min  # "to the start" in a reversing Slice
SPEC_INPUT = "spec"
SPEC_OUTPUT = "enhanced"
STATE_OUTPUT_SUFFIX = "_out"
_BAND_PADS = [0, BAND_KERNEL // 2, 0, BAND_KERNEL // 2]  # (1, 5) convolutions: pad 2 bands each side
_SFE_PADS = [0, SFE_NEIGHBOURS // 2, 0, SFE_NEIGHBOURS // 2]
# The mask is produced as 4 channels (m_re, m_im, m_im, m_re) and multiplied with (s_re, s_im, s_re, s_im)
# (the spectrum's two rows twice, by an exact 0/1 matrix product); _COMPLEX_PRODUCT then forms
# (s_re m_re - s_im m_im, s_re m_im + s_im m_re).
_MASK_DUPLICATE = [0, 1, 1, 0]
_SPEC_DUPLICATE = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.float32)
_COMPLEX_PRODUCT = np.array([[1, -1, 0, 0], [0, 0, 1, 1]], dtype=np.float32)


def state_output_name(name: str) -> str:
    """Graph output that carries the next value of state input ``name``."""
    return name + STATE_OUTPUT_SUFFIX


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array: np.ndarray, hint: str = "w") -> str:
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def shape(self, *dims: int) -> str:
        return self.const(np.array(dims, dtype=np.int64), "shape")

    def op(self, op_type: str, inputs: list[str], outputs: list[str] | None = None, **attrs: Any) -> str:
        """Add a node; returns its first used output's name (``outputs`` names them, "" for unused ones;
        default: one fresh name)."""
        outputs = outputs or [self._name(op_type.lower())]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, **attrs))
        return next(name for name in outputs if name)


def _activation(g: _Graph, x: str, act: nn.Module) -> str:
    """PReLU with one slope becomes LeakyRelu, which onnxruntime fuses into the convolution before it."""
    if isinstance(act, nn.Tanh):
        return g.op("Tanh", [x])
    slope = prelu_slope(act)
    if slope.size == 1:
        return g.op("LeakyRelu", [x], alpha=float(slope.reshape(())))
    return g.op("PRelu", [x, g.const(slope, "slope")])


def _conv_block(g: _Graph, x: str, block: ConvBlock, transposed: bool, duplicate: list[int] | None = None) -> str:
    """Strided (1, 5) conv (or transposed conv) + folded BN + PReLU/Tanh on (1, C, 1, F).

    ``duplicate`` lists output channels to emit (in that order) instead of all of them once.
    """
    conv = block.conv
    weight, bias = as_f64(conv.weight), as_f64(conv.bias)
    groups = conv.groups
    if transposed:
        w, b = fold_conv_transpose(weight, bias, block.bn, groups)
        if duplicate is not None:
            w, b = w[:, duplicate], b[duplicate]
        y = g.op(
            "ConvTranspose",
            [x, g.const(w), g.const(b)],
            strides=[1, BAND_STRIDE],
            pads=_BAND_PADS,
            output_padding=list(conv.output_padding),
            group=groups,
        )
    else:
        w, b = fold_conv(weight, bias, block.bn)
        y = g.op("Conv", [x, g.const(w), g.const(b)], strides=[1, BAND_STRIDE], pads=_BAND_PADS, group=groups)
    return _activation(g, y, block.act)


def _slice(g: _Graph, x: str, axis: int, start: int, end: int, output: str | None = None) -> str:
    consts = [g.const(np.array([v], np.int64), "idx") for v in (start, end, axis)]
    return g.op("Slice", [x, *consts], outputs=[output] if output else None)


def _gt_block(g: _Graph, x: str, wts: GTConvWeights, state: tuple[str, str]) -> str:
    """GTConv block on (1, C, 1, F) with its conv cache and TRA hidden; writes their ``_out`` outputs."""
    cache, tra = state
    p = g.op("Conv", [x, g.const(wts.point_in), g.const(wts.point_in_bias)], pads=_SFE_PADS)
    p = _activation(g, p, wts.point_in_act)
    window = g.op("Concat", [cache, p], axis=2)  # (1, C, 2d + 1, F)
    _slice(g, window, axis=2, start=1, end=INT64_MAX, output=state_output_name(cache))
    d = g.op(
        "Conv",
        [window, g.const(wts.depth), g.const(wts.depth_bias)],
        dilations=[wts.dilation, 1],
        pads=_SFE_PADS,
        group=wts.channels,
    )  # (1, C, 1, F)
    d = _activation(g, d, wts.depth_act)
    q = g.op("Conv", [d, g.const(wts.point_out), g.const(wts.point_out_bias)])  # (1, C/2, 1, F)
    energy = g.op("ReduceSumSquare", [q], axes=[3], keepdims=0)  # (1, C/2, 1)
    energy = g.op("Reshape", [energy, g.shape(1, 1, wts.half)])  # (seq 1, batch 1, C/2)
    hidden = g.op(
        "GRU",
        [energy, g.const(wts.tra_w), g.const(wts.tra_r), g.const(wts.tra_b), "", tra],
        outputs=["", state_output_name(tra)],
        hidden_size=wts.tra_r.shape[-1],
        linear_before_reset=1,
    )  # (1, 1, C)
    hidden = g.op("Reshape", [hidden, g.shape(1, wts.tra_r.shape[-1], 1, 1)])
    gain = g.op("Conv", [hidden, g.const(wts.tra_fc), g.const(wts.tra_fc_b)])  # (1, C/2, 1, 1)
    attended = g.op("Mul", [q, g.op("Sigmoid", [gain])])  # (1, C/2, 1, F)
    untouched = _slice(g, x, axis=1, start=wts.half, end=wts.channels)
    pairs = g.op("Concat", [attended, untouched], axis=2)  # (1, C/2, 2, F)
    return g.op("Reshape", [pairs, g.shape(1, wts.channels, 1, -1)])  # channel shuffle: (1, C, 1, F)


def _dpgrnn(g: _Graph, x: str, block: DPGRNN, hidden: str) -> str:
    """DPGRNN on (F, 1, C) band-major features; returns (1, F, C) and writes ``<hidden>_out``.

    The intra (across bands) path runs both directions of both groups as one forward GRU over
    [x[f], x[F - 1 - f]], then un-reverses the backward half after the Linear that follows.
    """
    f, c = block.bands, block.channels
    intra = block.intra_rnn
    w, r, b = directions_side_by_side(*gru_to_onnx([intra.rnn1, intra.rnn2]))
    backward = g.op(
        "Slice",
        [x, *(g.const(np.array([v], np.int64), "idx") for v in (-1, INT64_MIN, 0, -1))],
    )  # (F, 1, C), bands reversed
    y = g.op(
        "GRU",
        [g.op("Concat", [x, backward], axis=2), g.const(w), g.const(r), g.const(b)],
        hidden_size=r.shape[-1],
        linear_before_reset=1,
    )  # (F, 1, 1, C): step t holds [forward(t) (C/2), backward(F - 1 - t) (C/2)], each (group, unit)
    y = g.op("Reshape", [y, g.shape(f, 1, c)])
    fc = as_f32(block.intra_fc.weight).T[bidirectional_output_order(2, intra.rnn1.hidden_size)]  # (C in, C out)
    half = c // 2
    split = np.zeros((c, 2 * c), dtype=np.float32)  # forward units -> first C outputs, backward -> last C
    split[:half, :c] = fc[:half]
    split[half:, c:] = fc[half:]
    z = g.op("MatMul", [y, g.const(split)])  # (F, 1, 2C)
    z_forward = _slice(g, z, axis=2, start=0, end=c)
    z_backward = g.op(
        "Slice",
        [z, *(g.const(np.array(v, np.int64), "idx") for v in ([-1, c], [INT64_MIN, 2 * c], [0, 2], [-1, 1]))],
    )  # (F, 1, C), back in band order
    y = g.op("Sum", [z_forward, z_backward, g.const(as_f32(block.intra_fc.bias))])
    y = g.op(
        "LayerNormalization",
        [y, g.const(as_f32(block.intra_ln.weight)[:, None]), g.const(as_f32(block.intra_ln.bias)[:, None])],
        axis=0,
        epsilon=LAYER_NORM_EPS,
    )
    x = g.op("Reshape", [g.op("Add", [x, y]), g.shape(1, f, c)])  # (1, F, C): batch of F sequences
    inter = block.inter_rnn
    w, r, b = gru_to_onnx([inter.rnn1, inter.rnn2])
    h = g.op(
        "GRU",
        [x, g.const(w), g.const(r), g.const(b), "", hidden],
        outputs=["", state_output_name(hidden)],
        hidden_size=r.shape[-1],
        linear_before_reset=1,
    )  # (1, F, C)
    h = g.op("Reshape", [h, g.shape(f, c)])
    y = g.op("Gemm", [h, g.const(as_f32(block.inter_fc.weight)), g.const(as_f32(block.inter_fc.bias))], transB=1)
    y = g.op(
        "LayerNormalization",
        [y, g.const(as_f32(block.inter_ln.weight)), g.const(as_f32(block.inter_ln.bias))],
        axis=0,
        epsilon=LAYER_NORM_EPS,
    )  # (F, C)
    return g.op("Add", [x, y])  # (1, F, C)


def build_step_graph(model: GTCRN) -> onnx.ModelProto:
    """The ONNX graph of ``model.step`` for one stream (see the module docstring for its interface)."""
    model = model.eval()
    cfg = model.config
    n_bins, bands, channels = cfg.stft.n_bins, model.encoder.bands, cfg.channels
    state = {name: tuple(t.shape) for name, t in model.init_state(1).named_tensors().items()}
    g = _Graph()

    power = g.op("ReduceSumSquare", [SPEC_INPUT], axes=[1], keepdims=1)  # (F, 1)
    mag = g.op("Sqrt", [g.op("Add", [power, g.const(np.array(MAGNITUDE_EPS, np.float32))])])
    feat = g.op("Concat", [mag, SPEC_INPUT], axis=1)  # (F, 3): magnitude, real, imaginary
    compress, expand = erb_matrices(model.erb, n_bins)
    x = g.op("Gemm", [feat, g.const(compress, "erb")], transA=1)  # (3, bands0)
    x = g.op("Reshape", [x, g.shape(1, INPUT_FEATURES, 1, -1)])  # (1, 3, 1, bands0)
    x = g.op("Conv", [x, g.const(sfe_weight(INPUT_FEATURES), "sfe")], pads=_SFE_PADS)  # (1, 9, 1, bands0)

    skips = []
    convs = list(model.encoder.en_convs)
    for block in convs[:2]:
        x = _conv_block(g, x, block, transposed=False)
        skips.append(x)
    for i, block in enumerate(model.encoder.gt_blocks):
        x = _gt_block(g, x, GTConvWeights(block, bands), (f"encoder_conv_{i}", f"encoder_tra_{i}"))
        skips.append(x)

    x = g.op("Transpose", [x], perm=[3, 2, 0, 1])  # (F, 1, 1, C)
    x = g.op("Reshape", [x, g.shape(bands, 1, channels)])  # (F, 1, C): band-major
    for i, block in enumerate(model.dpgrnns):
        if i:
            x = g.op("Reshape", [x, g.shape(bands, 1, channels)])
        x = _dpgrnn(g, x, block, f"dpgrnn_inter_{i}")  # (1, F, C)
    x = g.op("Transpose", [g.op("Reshape", [x, g.shape(1, 1, bands, channels)])], perm=[0, 3, 1, 2])  # (1, C, 1, F)

    rev = list(reversed(skips))
    for i, block in enumerate(model.decoder.gt_blocks):
        x = g.op("Add", [x, rev[i]])
        x = _gt_block(g, x, GTConvWeights(block, bands), (f"decoder_conv_{i}", f"decoder_tra_{i}"))
    last_convs = list(model.decoder.de_convs)[len(model.decoder.gt_blocks) :]
    n_gt = len(model.decoder.gt_blocks)
    for j, block in enumerate(last_convs):
        x = g.op("Add", [x, rev[n_gt + j]])
        is_last = j == len(last_convs) - 1
        x = _conv_block(g, x, block, transposed=True, duplicate=_MASK_DUPLICATE if is_last else None)

    mask = g.op("Reshape", [x, g.shape(len(_MASK_DUPLICATE), -1)])  # (4, bands0): m_re, m_im, m_im, m_re
    mask = g.op("MatMul", [mask, g.const(expand, "ierb")])  # (4, F)
    spec4 = g.op("Gemm", [g.const(_SPEC_DUPLICATE, "dup"), SPEC_INPUT], transB=1)  # (4, F): s_re, s_im, s_re, s_im
    prod = g.op("Mul", [spec4, mask])  # (4, F): s_re m_re, s_im m_im, s_re m_im, s_im m_re
    g.op("Gemm", [prod, g.const(np.ascontiguousarray(_COMPLEX_PRODUCT.T), "complex")], outputs=[SPEC_OUTPUT], transA=1)

    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info(SPEC_INPUT, f32, [n_bins, 2])]
    inputs += [helper.make_tensor_value_info(n, f32, list(s)) for n, s in state.items()]
    outputs = [helper.make_tensor_value_info(SPEC_OUTPUT, f32, [n_bins, 2])]
    outputs += [helper.make_tensor_value_info(state_output_name(n), f32, list(s)) for n, s in state.items()]
    graph = helper.make_graph(g.nodes, "gtcrn_step", inputs, outputs, g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="rtenhance")
    onnx.checker.check_model(proto)
    return proto
