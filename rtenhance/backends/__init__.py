"""Inference backends: objects that run ``GTCRN.step`` on one STFT frame held in NumPy buffers.

A backend keeps its own streaming state between calls. ``make_stepper`` picks one by name:
- ``"native"``: the step in a small C library compiled on first use with the system C compiler (fastest;
  needs a C compiler, see ``rtenhance.backends.native``);
- ``"onnx"``: the step as a small ONNX graph built from the weights, run in onnxruntime;
- ``"torch"``: eager ``GTCRN.step``, the reference;
- ``"auto"``: the fastest one available: ``"native"`` when it builds and loads, else ``"onnx"`` when
  onnxruntime imports, else ``"torch"``.
"""

from __future__ import annotations

import importlib.util
from typing import Protocol

import numpy as np

from rtenhance.model.gtcrn import GTCRN
from rtenhance.model.state import StreamState


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
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    if backend == "auto":
        if _native_unavailable() is None:
            return "native"
        return "onnx" if has_ort else "torch"
    if backend == "native":
        reason = _native_unavailable()
        if reason is not None:
            raise ValueError(f"backend 'native' is unavailable: {reason}; choose 'onnx' or 'torch'")
    if backend == "onnx" and not has_ort:
        raise ValueError("backend 'onnx' needs the onnxruntime package (pip install onnxruntime), or choose 'torch'")
    return backend


def make_stepper(model: GTCRN, backend: str = DEFAULT_BACKEND) -> FrameStepper:
    """A stepper for one stream of ``model`` on the named backend (see the module docstring).

    Raises:
        ValueError: unknown or unavailable backend name.
    """
    concrete = resolve_backend(backend)
    if concrete == "native":
        from rtenhance.backends.native import NativeStepper

        return NativeStepper(model)
    if concrete == "onnx":
        from rtenhance.backends.onnx_backend import OnnxStepper

        return OnnxStepper(model)
    from rtenhance.backends.torch_backend import TorchStepper

    return TorchStepper(model)
