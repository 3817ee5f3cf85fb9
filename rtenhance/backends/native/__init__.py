"""Native backend: one streaming GTCRN step in a small C library (``gtcrn_step.c``), called through ctypes.

The library comes prebuilt with the package, else is built on first use with the system C compiler and
cached (``rtenhance.native_build``). The step's plan and weights come from ``ModelWeights.plan`` (no
PyTorch needed), or are built from a PyTorch ``GTCRN``.
The flags are portable (no ``-march=native``, no ``-ffast-math``), so a home folder shared between
machines never loads a binary that does not fit its CPU. Without the prebuilt library and a working
compiler, ``load_library`` raises ``NativeUnavailable`` with the reason.

``NativeStepper`` prepares everything once: the plan and weight blob (``plan.py``), two state sets, a
scratch buffer and the foreign call's arguments. A hop is one ``np.copyto`` and one foreign call that reads
one state set and writes the other; the two then swap roles.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtenhance.backends.native.plan_format import Plan
from rtenhance.native_build import NativeUnavailable, cache_dir, compiler, listed_library

if TYPE_CHECKING:
    from rtenhance.model.gtcrn import GTCRN
    from rtenhance.model.state import StreamState
    from rtenhance.weights.model_weights import ModelWeights

__all__ = ["NativeStep", "NativeStepper", "NativeUnavailable", "build_library", "cache_dir", "compiler",
           "load_library", "unavailable_reason"]

BUFFER_ALIGN_BYTES = 64
FLOAT_BYTES = 4


def _declare(lib: ctypes.CDLL) -> None:
    lib.gtcrn_scratch_floats.argtypes = [ctypes.c_void_p]
    lib.gtcrn_scratch_floats.restype = ctypes.c_int64
    lib.gtcrn_step.argtypes = [ctypes.c_void_p] * 7
    lib.gtcrn_step.restype = None


LIBRARY = listed_library("gtcrn_step", _declare)


def build_library(cc: list[str], folder: Path) -> Path:
    """The library's path, compiling it first unless the cache already holds it."""
    return LIBRARY.build(cc, folder)


def load_library() -> ctypes.CDLL:
    """The native library for the current ``$CC`` and cache folder, built if needed; the outcome (library
    or failure) is remembered for the rest of the process.

    Raises:
        NativeUnavailable: no working compiler, a failed build, or a library that does not load.
    """
    return LIBRARY.load()


def unavailable_reason() -> str | None:
    """Why the native backend cannot run here, or None when it can (builds it on the first call)."""
    return LIBRARY.unavailable_reason()


def _plan_of(model: GTCRN) -> Plan:
    """The plan of a PyTorch model (needs PyTorch)."""
    from rtenhance.backends.native.plan import build_plan

    return build_plan(model)


def _aligned_zeros(floats: int) -> np.ndarray:
    """A zeroed float32 array of ``floats`` whose data starts on a ``BUFFER_ALIGN_BYTES`` boundary."""
    raw = np.zeros(floats + BUFFER_ALIGN_BYTES // FLOAT_BYTES, dtype=np.float32)
    skip = (-raw.ctypes.data % BUFFER_ALIGN_BYTES) // FLOAT_BYTES
    return raw[skip : skip + floats]


@dataclass(frozen=True)
class NativeStep:
    """What C code needs to run the step itself: ``gtcrn_step``'s address and its constant arguments.

    Attributes:
        function: address of ``gtcrn_step`` in the loaded library.
        plan: address of the int32 plan (valid while the ``NativeStepper`` lives).
        blob: address of the float32 weight blob (valid while the ``NativeStepper`` lives).
        state_floats: floats in one state set.
        scratch_floats: floats of scratch one step needs (64-byte aligned).
    """

    function: int
    plan: int
    blob: int
    state_floats: int
    scratch_floats: int


class NativeStepper:
    """One stream of ``model.step`` in the native library (see the module docstring).

    ``native_step`` lets C code (``rtenhance.audio.realtime.native_hop``) run the same step on state of its own.

    Args:
        model: the network (torch-free ``ModelWeights``, or a PyTorch ``GTCRN``); its weights are copied
            (later changes to it are not seen).

    Raises:
        NativeUnavailable: the library cannot be built or loaded, or does not accept the model's plan.
    """

    def __init__(self, model: GTCRN | ModelWeights) -> None:
        lib = load_library()
        plan = getattr(model, "plan", None) or _plan_of(model)  # ModelWeights carries its plan
        self._plan, self._blob = plan.ints, _aligned_zeros(plan.blob.size)
        self._blob[:] = plan.blob
        scratch_floats = lib.gtcrn_scratch_floats(self._plan.ctypes.data)
        if scratch_floats < 0:
            raise NativeUnavailable(f"the native library in {cache_dir()} does not match this plan version")
        self._scratch = _aligned_zeros(scratch_floats)
        n_bins = model.config.stft.n_bins
        self._spec = np.zeros((n_bins, 2), dtype=np.float32)
        self._out = np.zeros((n_bins, 2), dtype=np.float32)
        self._states = [_aligned_zeros(plan.state_floats) for _ in range(2)]
        self._views = [
            {
                name: state[offset : offset + int(np.prod(shape))].reshape(shape)
                for (name, shape), offset in zip(plan.state_shapes.items(), plan.state_offsets.values())
            }
            for state in self._states
        ]
        pointers = [ctypes.c_void_p(a.ctypes.data) for a in (self._plan, self._blob, self._spec, self._out)]
        states = [ctypes.c_void_p(s.ctypes.data) for s in self._states]
        scratch = ctypes.c_void_p(self._scratch.ctypes.data)
        self._step = lib.gtcrn_step
        self.native_step = NativeStep(
            function=ctypes.cast(lib.gtcrn_step, ctypes.c_void_p).value or 0, plan=self._plan.ctypes.data,
            blob=self._blob.ctypes.data, state_floats=plan.state_floats, scratch_floats=int(scratch_floats))
        self._args = [(*pointers, states[i], states[1 - i], scratch) for i in range(2)]
        self._turn = 0

    def reset(self) -> None:
        """Back to the zero state."""
        for state in self._states:
            state.fill(0.0)
        self._turn = 0

    def step(self, frame: np.ndarray) -> np.ndarray:
        """(F, 2) float32 noisy frame -> (F, 2) float32 enhanced frame (an internal buffer, valid until the
        next call)."""
        np.copyto(self._spec, frame)
        self._step(*self._args[self._turn])
        self._turn ^= 1
        return self._out

    def stream_state(self) -> StreamState:
        """A copy of the current state, as ``GTCRN.step`` would hold it (needs PyTorch)."""
        import torch

        from rtenhance.model.state import StreamState

        current = self._views[self._turn]
        return StreamState.from_named_tensors({name: torch.from_numpy(v.copy()) for name, v in current.items()})
