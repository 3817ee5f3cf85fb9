"""Native batched step: many independent streams of ``model.step`` per foreign call (``gtcrn_batch.c``).

Streams live in numbered slots; slot s is lane s % lanes of block s // lanes, and a block's state stores
every element with the lane innermost, so one call runs each block's lanes through the network together
(SIMD across streams) with the weights of the single-stream plan (``plan.py``).

The library is built like the single-stream one (``rtenhance.native_build``), in two variants: a portable
one, and on x86-64 CPUs that have AVX2 and FMA one compiled for them (eight lanes per instruction, fused
multiply-add), chosen at load time from ``/proc/cpuinfo``.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
from pathlib import Path

import numpy as np

from rtenhance.backends.native.plan import build_plan
from rtenhance.model.gtcrn import GTCRN
from rtenhance.native_build import NativeUnavailable, cache_dir, listed_library

__all__ = ["BatchStepper", "NativeUnavailable", "load_batch_library"]

BUFFER_ALIGN_BYTES = 64
FLOAT_BYTES = 4
CPUINFO = Path("/proc/cpuinfo")
AVX2_FLAGS = frozenset({"avx2", "fma"})
TOO_WIDE = -2  # gtcrn_batch_scratch_floats: more channels than its MAX_TERMS allows
MAX_CHANNELS = 25  # MAX_TERMS // BAND_KERNEL in gtcrn_batch.c


def _declare(lib: ctypes.CDLL) -> None:
    lib.gtcrn_batch_lanes.argtypes = []
    lib.gtcrn_batch_lanes.restype = ctypes.c_int32
    lib.gtcrn_batch_scratch_floats.argtypes = [ctypes.c_void_p]
    lib.gtcrn_batch_scratch_floats.restype = ctypes.c_int64
    lib.gtcrn_batch_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                     *[ctypes.c_void_p] * 6]
    lib.gtcrn_batch_step.restype = None


PORTABLE = listed_library("gtcrn_batch", _declare)
AVX2 = listed_library("gtcrn_batch_avx2", _declare)


def _has_avx2() -> bool:
    """Whether this is an x86-64 CPU with AVX2 and FMA (Linux: from /proc/cpuinfo)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        text = CPUINFO.read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return AVX2_FLAGS.issubset(flags)


def load_batch_library() -> ctypes.CDLL:
    """The batched library for this CPU, built if needed (the AVX2 variant when the CPU has it).

    Raises:
        NativeUnavailable: no working compiler, a failed build, or a library that does not load.
    """
    if _has_avx2():
        with contextlib.suppress(NativeUnavailable):  # a compiler without -mavx2: the portable build below
            return AVX2.load()
    return PORTABLE.load()


def _aligned_zeros(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """Zeros of ``shape`` whose data starts on a ``BUFFER_ALIGN_BYTES`` boundary."""
    itemsize = np.dtype(dtype).itemsize
    count = int(np.prod(shape))
    raw = np.zeros(count + BUFFER_ALIGN_BYTES // itemsize, dtype=dtype)
    skip = (-raw.ctypes.data % BUFFER_ALIGN_BYTES) // itemsize
    return raw[skip : skip + count].reshape(shape)


class BatchStepper:
    """``model.step`` for any number of streams held in slots (see the module docstring).

    Args:
        model: the network; its weights are copied (later changes to it are not seen).
        slots: initial capacity in streams (grows as needed).

    Raises:
        NativeUnavailable: the library cannot be built or loaded, or does not accept the model's plan.
    """

    def __init__(self, model: GTCRN, slots: int = 0) -> None:
        self._lib = load_batch_library()
        plan = build_plan(model)
        self._plan = plan.ints
        self._blob = _aligned_zeros((plan.blob.size,))
        self._blob[:] = plan.blob
        scratch_floats = self._lib.gtcrn_batch_scratch_floats(self._plan.ctypes.data)
        if scratch_floats == TOO_WIDE:
            raise NativeUnavailable(f"the batched native step supports at most {MAX_CHANNELS} channels")
        if scratch_floats < 0:
            raise NativeUnavailable(f"the batched native library in {cache_dir()} does not match this plan version")
        self._scratch = _aligned_zeros((int(scratch_floats),))
        self.lanes = int(self._lib.gtcrn_batch_lanes())
        self.n_bins = model.config.stft.n_bins
        self._state_floats = plan.state_floats
        self._free: list[int] = []
        self._used = np.zeros(0, dtype=bool)
        self._allocate(max(1, -(-slots // self.lanes)))

    @property
    def capacity(self) -> int:
        """Slots allocated (a multiple of ``lanes``)."""
        return self._used.shape[0]

    def _allocate(self, blocks: int) -> None:
        """Grow to ``blocks`` blocks, keeping every existing slot's state."""
        old_blocks = self.capacity // self.lanes
        slots = blocks * self.lanes
        states = _aligned_zeros((blocks, self._state_floats * self.lanes))
        steps = np.zeros(blocks, dtype=np.int64)
        used = np.zeros(slots, dtype=bool)
        if old_blocks:
            states[:old_blocks] = self._states
            steps[:old_blocks] = self._steps
            used[: self.capacity] = self._used
        self._states, self._steps, self._used = states, steps, used
        self._spec = _aligned_zeros((slots, self.n_bins, 2))
        self._out = _aligned_zeros((slots, self.n_bins, 2))
        self._active = np.zeros(slots, dtype=np.uint8)
        self._free = sorted(set(self._free) | set(range(old_blocks * self.lanes, slots)), reverse=True)

    def open_slot(self) -> int:
        """A free slot (the lowest), in the zero state; grows the capacity when all are taken."""
        if not self._free:
            self._allocate(2 * (self.capacity // self.lanes))
        slot = self._free.pop()
        block, lane = divmod(slot, self.lanes)
        self._states[block].reshape(self._state_floats, self.lanes)[:, lane] = 0.0
        self._used[slot] = True
        return slot

    def close_slot(self, slot: int) -> None:
        """Give ``slot`` back (its stream is gone)."""
        if not self._used[slot]:
            raise ValueError(f"slot {slot} is not open")
        self._used[slot] = False
        self._free.append(slot)
        self._free.sort(reverse=True)

    def step(self, slots: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """One step of the streams in ``slots``; every other stream keeps its state.

        Args:
            slots: (n,) distinct open slots.
            frames: (n, F, 2) float32 noisy frames, row i for slots[i].

        Returns:
            (n, F, 2) float32 enhanced frames (a new array).
        """
        if slots.shape[0] == 0:
            return np.zeros((0, self.n_bins, 2), dtype=np.float32)
        self._active.fill(0)
        self._active[slots] = 1
        self._spec[slots] = frames
        n_blocks = int(slots.max()) // self.lanes + 1
        self._lib.gtcrn_batch_step(
            self._plan.ctypes.data, self._blob.ctypes.data, self._state_floats, n_blocks, self._spec.ctypes.data,
            self._out.ctypes.data, self._states.ctypes.data, self._steps.ctypes.data, self._active.ctypes.data,
            self._scratch.ctypes.data)
        return self._out[slots]
