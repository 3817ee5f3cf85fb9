"""Enhancement of decoded audio of any rate and channel count: resample to the model rate, enhance each
channel on its own (offline or frame by frame), resample back, keep the exact length."""

from __future__ import annotations

from typing import Callable

import numpy as np

from typing import TYPE_CHECKING

from rtenhance.backends import DEFAULT_BACKEND, make_stepper
from rtenhance.dsp.resample import resample
from rtenhance.enhancer import Enhancer, enhance_centred

if TYPE_CHECKING:
    from rtenhance.model.gtcrn import GTCRN
    from rtenhance.weights import ModelWeights

ProgressFn = Callable[[int], None]  # called with a number of model-rate samples just processed
STREAM_CHUNK_SECONDS = 1.0  # streaming input is fed in chunks of this length (for progress reports)


def enhance_samples(
    model: GTCRN | ModelWeights,
    samples: np.ndarray,
    sample_rate: int,
    streaming: bool = False,
    backend: str = DEFAULT_BACKEND,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Enhance (N, C) samples at ``sample_rate``; returns (N, C) float32 at the same rate.

    Args:
        model: the network in eval mode.
        samples: (N, C) float32.
        sample_rate: Hz; resampled to the model rate and back when different.
        streaming: the real-time path (causal framing) instead of the offline one (centred framing, as the
            model was trained); both step the model frame by frame on ``backend``.
        backend: inference backend.
        progress: optional callback receiving processed model-rate samples.
    """
    model_rate = model.config.stft.sample_rate
    n, channels = samples.shape
    x = resample(samples, sample_rate, model_rate) if sample_rate != model_rate else samples
    x = np.ascontiguousarray(x.T, dtype=np.float32)  # (C, N16)
    stepper = make_stepper(model, backend)
    if streaming:
        enhancer = Enhancer(stepper, model.config.stft)
        chunk = int(STREAM_CHUNK_SECONDS * model_rate)
        y = np.stack([enhancer.enhance(ch, chunk, progress) for ch in x])
    else:
        y = np.stack([enhance_centred(stepper, ch, model.config.stft) for ch in x])
        if progress is not None:
            progress(x.size)
    out = y.T  # (N16, C)
    if sample_rate != model_rate:
        out = resample(out, model_rate, sample_rate)
    return _fit_length(out, n).reshape(n, channels)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad (M, C) to (n, C)."""
    if x.shape[0] >= n:
        return x[:n]
    return np.pad(x, ((0, n - x.shape[0]), (0, 0)))
