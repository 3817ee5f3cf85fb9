"""The int32 plan and float32 weight blob that ``gtcrn_step.c`` reads, built once from a loaded model.

The blob holds the folded weights of ``folding`` (the same algebra as the ONNX backend), every matrix
stored as (inputs, outputs) so that the C inner loops run over contiguous outputs. The plan is a header
of sizes (``Header``) followed by, in this order:

1. ERB compression: per merged band (first bin, bin count, weights offset);
2. ERB expansion: the same per band, for its row of the expansion matrix;
3. the two encoder convolution blocks: (in channels, out channels, groups, is_tanh, weight, bias, slope);
4. each encoder GTConv block: (dilation, conv cache offset, TRA hidden offset, 13 weight offsets);
5. each DPGRNN: (hidden offset, 17 weight offsets);
6. each decoder GTConv block, then the two decoder transposed convolution blocks, as above.

Weight entries are offsets into the blob (in floats); state offsets are into one state set, which holds
``StreamState.named_tensors()`` for batch 1 back to back in that order.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from rtenhance.backends.folding import (
    GTConvWeights,
    as_f32,
    as_f64,
    bidirectional_output_order,
    erb_matrices,
    fold_conv,
    fold_conv_transpose,
    gru_to_onnx,
    prelu_slope,
)
from rtenhance.backends.native.plan_format import ALIGN_FLOATS, PLAN_VERSION, Header, Plan
from rtenhance.model.gtcrn import GTCRN, MAGNITUDE_EPS, strided_bands
from rtenhance.model.modules import (
    BAND_KERNEL,
    BAND_STRIDE,
    GT_KERNEL_BANDS,
    GT_KERNEL_FRAMES,
    LAYER_NORM_EPS,
    SFE_NEIGHBOURS,
    ConvBlock,
    DPGRNN,
)

class _Writer:
    """Appends plan ints and blob arrays."""

    def __init__(self) -> None:
        self.ints: list[int] = []
        self._chunks: list[np.ndarray] = []
        self._floats = 0

    def weights(self, array: np.ndarray) -> int:
        """Store ``array`` (flattened, float32) in the blob; returns its offset and appends it to the plan."""
        flat = np.ascontiguousarray(array, dtype=np.float32).ravel()
        padded = -(-flat.size // ALIGN_FLOATS) * ALIGN_FLOATS
        offset = self._floats
        self._chunks.append(np.pad(flat, (0, padded - flat.size)))
        self._floats += padded
        self.ints.append(offset)
        return offset

    def blob(self) -> np.ndarray:
        return np.concatenate(self._chunks)


def _per_channel(act: nn.Module, channels: int) -> np.ndarray:
    """A PReLU's slope for each of ``channels`` (a single shared slope repeated)."""
    return np.broadcast_to(prelu_slope(act).ravel(), (channels,))


def _spans(w: _Writer, rows: np.ndarray) -> None:
    """Each row of ``rows`` (bands, bins) as (first bin, count, weights) over its non-zero range."""
    for row in rows:
        nonzero = np.flatnonzero(row)
        first, last = (int(nonzero[0]), int(nonzero[-1])) if nonzero.size else (0, -1)
        w.ints += [first, last - first + 1]
        w.weights(row[first : last + 1])


def _conv_block(w: _Writer, block: ConvBlock, transposed: bool) -> None:
    conv = block.conv
    weight, bias = as_f64(conv.weight), as_f64(conv.bias)
    if transposed:
        folded, folded_bias = fold_conv_transpose(weight, bias, block.bn, conv.groups)  # (in, out/g, 1, 5)
        c_in, c_out = weight.shape[0], weight.shape[1] * conv.groups
    else:
        folded, folded_bias = fold_conv(weight, bias, block.bn)  # (out, in/g, 1, 5)
        c_out, c_in = weight.shape[0], weight.shape[1] * conv.groups
    is_tanh = isinstance(block.act, nn.Tanh)
    w.ints += [c_in, c_out, conv.groups, int(is_tanh)]
    w.weights(folded)
    w.weights(folded_bias)
    w.weights(np.zeros(c_out) if is_tanh else _per_channel(block.act, c_out))


def _gru(w: _Writer, weights: tuple[np.ndarray, np.ndarray, np.ndarray], direction: int = 0) -> None:
    """One direction of an ONNX-layout GRU: W^T (In, 3H), R^T (H, 3H), B (6H) = input then recurrent bias."""
    wx, rh, bias = weights
    w.weights(wx[direction].T)
    w.weights(rh[direction].T)
    w.weights(bias[direction])


def _gt_block(w: _Writer, wts: GTConvWeights, cache_offset: int, tra_offset: int) -> None:
    c, half = wts.channels, wts.half
    w.ints += [wts.dilation, cache_offset, tra_offset]
    w.weights(wts.point_in[:, :half, 0, :])  # (C, C/2, 3): the second half's weights are zero
    w.weights(wts.point_in_bias)
    w.weights(_per_channel(wts.point_in_act, c))
    w.weights(wts.depth[:, 0])  # (C, 3 frames, 3 bands)
    w.weights(wts.depth_bias)
    w.weights(_per_channel(wts.depth_act, c))
    w.weights(wts.point_out[:, :, 0, 0])  # (C/2, C)
    w.weights(wts.point_out_bias)
    _gru(w, (wts.tra_w, wts.tra_r, wts.tra_b))
    w.weights(wts.tra_fc[:, :, 0, 0].T)  # (C, C/2)
    w.weights(wts.tra_fc_b)


def _dpgrnn(w: _Writer, block: DPGRNN, hidden_offset: int) -> None:
    w.ints.append(hidden_offset)
    intra = block.intra_rnn
    intra_gru = gru_to_onnx([intra.rnn1, intra.rnn2])  # bidirectional: (2, 3C/2, C), (2, 3C/2, C/2), (2, 3C)
    _gru(w, intra_gru, direction=0)
    _gru(w, intra_gru, direction=1)
    order = bidirectional_output_order(2, intra.rnn1.hidden_size)
    w.weights(as_f32(block.intra_fc.weight).T[order])  # (C in, as (direction, group, unit); C out)
    w.weights(as_f32(block.intra_fc.bias))
    w.weights(as_f32(block.intra_ln.weight))  # (F, C)
    w.weights(as_f32(block.intra_ln.bias))
    _gru(w, gru_to_onnx([block.inter_rnn.rnn1, block.inter_rnn.rnn2]))
    w.weights(as_f32(block.inter_fc.weight).T)
    w.weights(as_f32(block.inter_fc.bias))
    w.weights(as_f32(block.inter_ln.weight))
    w.weights(as_f32(block.inter_ln.bias))


def build_plan(model: GTCRN) -> Plan:
    """The plan and weight blob of ``model.step`` for one stream (see the module docstring)."""
    model = model.eval()
    cfg = model.config
    bands1 = strided_bands(cfg.n_bands)
    state_shapes = {name: tuple(t.shape) for name, t in model.init_state(1).named_tensors().items()}
    sizes = [int(np.prod(shape)) for shape in state_shapes.values()]
    state_offsets = dict(zip(state_shapes, np.cumsum([0, *sizes[:-1]]).tolist()))

    w = _Writer()
    w.ints += [PLAN_VERSION, cfg.stft.n_bins, cfg.n_bands, bands1, model.encoder.bands, cfg.channels]
    w.ints += [len(cfg.gt_dilations), cfg.dpgrnn_blocks, BAND_KERNEL, BAND_STRIDE, SFE_NEIGHBOURS]
    w.ints += [GT_KERNEL_FRAMES, GT_KERNEL_BANDS]
    w.weights(np.array([MAGNITUDE_EPS, LAYER_NORM_EPS]))
    assert len(w.ints) == len(Header)

    compress, expand = erb_matrices(model.erb, cfg.stft.n_bins)
    _spans(w, compress.T)
    _spans(w, expand)
    convs = list(model.encoder.en_convs)
    for block in convs[:2]:
        _conv_block(w, block, transposed=False)  # type: ignore[arg-type]
    bands = model.encoder.bands
    for i, gt in enumerate(model.encoder.gt_blocks):
        _gt_block(w, GTConvWeights(gt, bands), state_offsets[f"encoder_conv_{i}"], state_offsets[f"encoder_tra_{i}"])
    for i, block in enumerate(model.dpgrnns):
        _dpgrnn(w, block, state_offsets[f"dpgrnn_inter_{i}"])  # type: ignore[arg-type]
    for i, gt in enumerate(model.decoder.gt_blocks):
        _gt_block(w, GTConvWeights(gt, bands), state_offsets[f"decoder_conv_{i}"], state_offsets[f"decoder_tra_{i}"])
    for block in list(model.decoder.de_convs)[len(model.decoder.gt_blocks) :]:
        _conv_block(w, block, transposed=True)  # type: ignore[arg-type]
    return Plan(np.array(w.ints, dtype=np.int32), w.blob(), state_shapes, state_offsets, sum(sizes))
