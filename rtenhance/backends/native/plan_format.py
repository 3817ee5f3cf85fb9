"""The native step's plan without PyTorch: its container, its header, and the checks a stored plan must pass.

``plan.build_plan`` (needs PyTorch) writes a ``Plan`` from a model; the torch-free weights file
(``rtenhance.weights.npz_format``) stores it, and ``check_plan`` tests a stored one against the model
configuration before ``gtcrn_step.c`` may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from rtenhance.config import ModelConfig

PLAN_VERSION = 1  # must equal PLAN_VERSION in gtcrn_step.c
ALIGN_FLOATS = 16  # every blob entry starts on a 64-byte boundary (relative to the blob's start)
BAND_STRIDE = 2  # the encoder's two strided convolutions halve the bands (rounding up)


class Header(IntEnum):
    """Positions of the plan header's entries (the enum of the same names in gtcrn_step.c)."""

    VERSION = 0
    N_BINS = 1
    BANDS0 = 2
    BANDS1 = 3
    BANDS2 = 4
    CHANNELS = 5
    N_GT = 6
    N_DPGRNN = 7
    BAND_KERNEL = 8
    BAND_STRIDE = 9
    SFE = 10
    GT_FRAMES = 11
    GT_BANDS = 12
    EPS_OFFSET = 13


@dataclass(frozen=True)
class Plan:
    """What ``gtcrn_step`` needs besides the frame and the state buffers.

    Attributes:
        ints: the int32 plan (header, then entries; see ``plan``'s module docstring).
        blob: the float32 weights.
        state_shapes: name -> shape of each state tensor (batch 1), in the order of the state buffers.
        state_offsets: name -> offset (floats) of each state tensor in a state set.
        state_floats: floats in one state set.
    """

    ints: np.ndarray
    blob: np.ndarray
    state_shapes: dict[str, tuple[int, ...]]
    state_offsets: dict[str, int]
    state_floats: int


class PlanError(ValueError):
    """A stored plan does not fit its model configuration or this version of the native step."""


def _strided(bands: int) -> int:
    return (bands - 1) // BAND_STRIDE + 1


def state_layout(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape (batch 1) of each streaming state tensor of a model of ``cfg``, in the state buffer's
    order (``StreamState.named_tensors``): conv caches (1, C, 2 d, F2), TRA hidden (1, 1, C), inter-path
    hidden (1, F2, C), with F2 the bands after the encoder (33)."""
    bands = _strided(_strided(cfg.n_bands))
    c = cfg.channels
    enc, dec = cfg.gt_dilations, tuple(reversed(cfg.gt_dilations))
    shapes: dict[str, tuple[int, ...]] = {}
    shapes.update({f"encoder_conv_{i}": (1, c, 2 * d, bands) for i, d in enumerate(enc)})
    shapes.update({f"encoder_tra_{i}": (1, 1, c) for i in range(len(enc))})
    shapes.update({f"decoder_conv_{i}": (1, c, 2 * d, bands) for i, d in enumerate(dec)})
    shapes.update({f"decoder_tra_{i}": (1, 1, c) for i in range(len(dec))})
    shapes.update({f"dpgrnn_inter_{i}": (1, bands, c) for i in range(cfg.dpgrnn_blocks)})
    return shapes


def check_plan(plan: Plan, cfg: ModelConfig) -> None:
    """Check a stored plan against ``cfg`` and this version of the step: header, state layout, and every
    entry within the blob or the state set.

    Raises:
        PlanError: what does not fit.
    """
    ints = plan.ints
    if ints.dtype != np.int32 or ints.ndim != 1 or ints.size <= len(Header):
        raise PlanError("the plan is not a 1-D int32 array with a header")
    if plan.blob.dtype != np.float32 or plan.blob.ndim != 1:
        raise PlanError("the weight blob is not a 1-D float32 array")
    if int(ints[Header.VERSION]) != PLAN_VERSION:
        raise PlanError(f"plan version {int(ints[Header.VERSION])}, this rtenhance reads version {PLAN_VERSION}")
    bands1 = _strided(cfg.n_bands)
    expected = {Header.N_BINS: cfg.stft.n_bins, Header.BANDS0: cfg.n_bands, Header.BANDS1: bands1,
                Header.BANDS2: _strided(bands1), Header.CHANNELS: cfg.channels, Header.N_GT: len(cfg.gt_dilations),
                Header.N_DPGRNN: cfg.dpgrnn_blocks}
    for entry, value in expected.items():
        if int(ints[entry]) != value:
            raise PlanError(f"plan header {entry.name} is {int(ints[entry])}, the model config gives {value}")
    layout = state_layout(cfg)
    sizes = [int(np.prod(shape)) for shape in layout.values()]
    offsets = dict(zip(layout, np.cumsum([0, *sizes[:-1]]).tolist()))
    if plan.state_shapes != layout or plan.state_offsets != offsets or plan.state_floats != sum(sizes):
        raise PlanError("the plan's state layout does not match the model config")
    limit = max(plan.blob.size, plan.state_floats)
    body = ints[len(Header):]
    if body.size and (int(body.min()) < 0 or int(body.max()) >= limit):
        raise PlanError("a plan entry points outside the weight blob and the state")
    if not np.isfinite(plan.blob).all():
        raise PlanError("the weight blob holds non-finite values")
