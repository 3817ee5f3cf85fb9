"""Inference backends: objects that run ``GTCRN.step`` on one STFT frame held in NumPy buffers.

A backend keeps its own streaming state between calls. ``make_stepper`` picks one by name:
- ``"native"``: the step in a small C library compiled on first use with the system C compiler (fastest;
  needs a C compiler, see ``rtenhance.backends.native``);
- ``"onnx"``: the step as a small ONNX graph built from the weights, run in onnxruntime;
- ``"torch"``: eager ``GTCRN.step``, the reference;
- ``"auto"``: the fastest one available: ``"native"`` when it builds and loads, else ``"onnx"`` when
  onnxruntime imports, else ``"torch"``.

Only the native backend runs without PyTorch (from ``ModelWeights.plan``); the others rebuild the network
with PyTorch. Nothing here imports PyTorch until such a backend is made.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from rtenhance.model.gtcrn import GTCRN
    from rtenhance.model.state import StreamState
    from rtenhance.weights.model_weights import ModelWeights

TORCH_HINT = "pip install 'rtenhance[train]'"


class FrameStepper(Protocol):
    """One stream of frame-by-frame enhancement with its state kept inside."""

    def step(self, frame: np.ndarray) -> np.ndarray:
        """(F, 2) float32 noisy frame -> (F, 2) float32 enhanced frame (valid until the next call)."""
        ...

    def reset(self) -> None:
        """Back to the zero state."""
        ...

    def stream_state(self) -> StreamState:
        """A copy of the current state, in the layout of ``GTCRN.step`` (for checks)."""
        ...


BACKENDS = ("auto", "native", "onnx", "torch")
DEFAULT_BACKEND = "auto"


def _native_unavailable() -> str | None:
    """Why the native backend cannot run here, or None (its first call builds the library; the outcome is
    remembered by ``rtenhance.backends.native``)."""
    from rtenhance.backends.native import unavailable_reason

    return unavailable_reason()


def resolve_backend(backend: str = DEFAULT_BACKEND) -> str:
    """The concrete backend a name selects (``"auto"`` -> the fastest available).

    Raises:
        ValueError: unknown backend name, ``"native"`` without a working C compiler (the message says
            why), or ``"onnx"`` without onnxruntime installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not available; choose one of: {', '.join(BACKENDS)}")
    has_torch = importlib.util.find_spec("torch") is not None
    has_ort = has_torch and importlib.util.find_spec("onnxruntime") is not None
    if backend == "auto":
        reason = _native_unavailable()
        if reason is None:
            return "native"
        if not has_torch:
            raise ValueError(f"no backend available: the native library is unavailable ({reason}), and the "
                             f"others need PyTorch ({TORCH_HINT})")
        return "onnx" if has_ort else "torch"
    if backend == "native":
        reason = _native_unavailable()
        if reason is not None:
            raise ValueError(f"backend 'native' is unavailable: {reason}; choose 'onnx' or 'torch'")
    if backend in ("onnx", "torch") and not has_torch:
        raise ValueError(f"backend {backend!r} needs PyTorch ({TORCH_HINT}); choose 'native'")
    if backend == "onnx" and not has_ort:
        raise ValueError("backend 'onnx' needs the onnxruntime package (pip install 'rtenhance[onnx]'), or choose 'torch'")
    return backend


def make_stepper(model: GTCRN | ModelWeights, backend: str = DEFAULT_BACKEND) -> FrameStepper:
    """A stepper for one stream of ``model`` on the named backend (see the module docstring).

    Args:
        model: torch-free ``ModelWeights``, or a PyTorch ``GTCRN``.
        backend: a name of ``BACKENDS``.

    Raises:
        ValueError: unknown or unavailable backend name.
    """
    concrete = resolve_backend(backend)
    if concrete == "native":
        from rtenhance.backends.native import NativeStepper

        return NativeStepper(model)
    if concrete == "onnx":
        from rtenhance.backends.onnx_backend import OnnxStepper

        return OnnxStepper(_torch_model(model))
    from rtenhance.backends.torch_backend import TorchStepper

    return TorchStepper(_torch_model(model))


def _torch_model(model: GTCRN | ModelWeights) -> GTCRN:
    from rtenhance.weights.model_weights import as_torch_model

    return as_torch_model(model)
