"""The engine's 16 kHz hop in C (``native_hop.c``): STFT, the model on a C thread, strength mix, iSTFT, limiter.

``NativeHop`` computes what ``PythonHop`` (``rtenhance.audio.realtime.hop``: ``Enhancer`` + ``FrameGate`` +
``SoftLimiter``) computes when the model's stepper is the native backend's, with one foreign call per hop
and no Python thread: the model runs on a pthread named ``rtenhance-model`` that calls ``gtcrn_step``
through its address (``NativeStepper.native_step``), on state sets and scratch owned by the C side. The
gate semantics are ``FrameGate``'s (deadline, passthrough, stale-state reset, dry/wet mix).

The model thread starts at ``reset`` (which the engine calls when it opens the devices, on its worker
thread, so the model thread inherits that thread's CPU affinity and priority), never inside ``process``.
What the model thread and the worker share is handed over under a lock in C; the values read here
(``model_s``, ``state_resets``) are C11 atomics read through accessor functions, not struct fields. The C
memory is freed only after its model thread has been joined (``nh_free``).

The call releases the interpreter lock (ctypes ``CDLL``) because it may wait for the model. The library
is built on first use with the system C compiler (``rtenhance.native_build``); ``NativeUnavailable`` says
why it cannot be used, and the engine then runs ``PythonHop``.
"""

from __future__ import annotations

import ctypes
import weakref

import numpy as np

from rtenhance.backends.native import NativeStepper
from rtenhance.config import StftConfig
from rtenhance.native_build import NativeUnavailable, listed_library

_PTR, _INT, _DOUBLE = ctypes.c_void_p, ctypes.c_int, ctypes.c_double
SIGNATURES: dict[str, tuple[list[type], type | None]] = {
    "nh_new": ([_INT, _INT, _PTR, _PTR, _PTR, ctypes.c_int64, ctypes.c_int64, _DOUBLE], _PTR),
    "nh_free": ([_PTR], None),
    "nh_process": ([_PTR, _PTR, ctypes.c_bool, _DOUBLE, _DOUBLE, _DOUBLE], ctypes.c_bool),
    "nh_output": ([_PTR], _PTR),
    "nh_reset": ([_PTR], _INT),
    "nh_warm_up": ([_PTR, _INT], None),
    "nh_close": ([_PTR], None),
    "nh_fft_new": ([_INT], _PTR),
    "nh_fft_free": ([_PTR], None),
    "nh_rfft": ([_PTR, _PTR, _PTR], None),
    "nh_irfft": ([_PTR, _PTR, _PTR], None),
}
ACCESSORS: dict[str, tuple[list[type], type | None]] = {  # never block: called holding the interpreter lock
    "nh_model_s": ([_PTR], _DOUBLE),
    "nh_state_resets": ([_PTR], ctypes.c_uint64),
    "nh_set_knee": ([_PTR, _DOUBLE], None),
}


def _set_types(lib: ctypes.CDLL, signatures: dict[str, tuple[list[type], type | None]]) -> None:
    for name, (argtypes, restype) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, restype


def _declare(lib: ctypes.CDLL) -> None:
    _set_types(lib, SIGNATURES)
    _set_types(lib, ACCESSORS)


LIBRARY = listed_library("native_hop", _declare)


def unavailable_reason() -> str | None:
    """Why the native hop cannot be used here, or None when it can (builds the library on the first call)."""
    return LIBRARY.unavailable_reason()


def knee_gain(knee_dbfs: float) -> float:
    """The limiter knee as a linear level (``SoftLimiter.knee``) for a knee in dBFS."""
    return float(10.0 ** (knee_dbfs / 20.0))


def _check_fft_size(n_fft: int) -> None:
    if n_fft < 4 or n_fft & (n_fft - 1):
        raise NativeUnavailable(f"the native hop needs n_fft a power of two, got {n_fft}")


class NativeFft:
    """The C library's real FFT of ``n_fft`` points (a power of two), on float32 arrays.

    Raises:
        NativeUnavailable: the library cannot be built, or n_fft is not a power of two.
    """

    def __init__(self, n_fft: int) -> None:
        _check_fft_size(n_fft)
        self._lib = LIBRARY.load()
        self.n_fft = n_fft
        self._fft = self._lib.nh_fft_new(n_fft)
        if not self._fft:
            raise NativeUnavailable("out of memory for the FFT tables")
        weakref.finalize(self, self._lib.nh_fft_free, self._fft)

    def rfft(self, x: np.ndarray) -> np.ndarray:
        """(n_fft,) samples -> (n_fft // 2 + 1, 2) float32 spectrum (real, imaginary), like ``np.fft.rfft``."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        spec = np.empty((self.n_fft // 2 + 1, 2), dtype=np.float32)
        self._lib.nh_rfft(self._fft, x.ctypes.data, spec.ctypes.data)
        return spec

    def irfft(self, spec: np.ndarray) -> np.ndarray:
        """(n_fft // 2 + 1, 2) spectrum -> (n_fft,) float32 samples, like ``np.fft.irfft(.., n=n_fft)``."""
        spec = np.ascontiguousarray(spec, dtype=np.float32)
        x = np.empty(self.n_fft, dtype=np.float32)
        self._lib.nh_irfft(self._fft, spec.ctypes.data, x.ctypes.data)
        return x


class NativeHop:
    """One 16 kHz mono stream's hop in C, with the ``HopProcessor`` interface (``rtenhance.audio.realtime.hop``).

    ``reset`` starts the model thread: until the first ``reset``, model hops pass through as missed.

    Args:
        stepper: the native backend's stepper, kept alive by this object: its plan and weights are used,
            its own state sets are not.
        cfg: the model's STFT (n_fft must be a power of two).
        knee_dbfs: the limiter knee in dBFS.

    Raises:
        NativeUnavailable: the library cannot be built or loaded, n_fft is not a power of two, or no memory.
    """

    def __init__(self, stepper: NativeStepper, cfg: StftConfig, knee_dbfs: float) -> None:
        _check_fft_size(cfg.n_fft)
        lib = LIBRARY.load()
        step = stepper.native_step
        handle = lib.nh_new(cfg.hop_samples, cfg.n_fft, step.function, step.plan, step.blob, step.state_floats,
                            step.scratch_floats, knee_gain(knee_dbfs))
        if not handle:
            raise NativeUnavailable("the native hop could not allocate its buffers")
        self._stepper = stepper  # owns the plan and the weights the C side reads
        self._lib = lib
        self._handle = handle
        fast = ctypes.PyDLL(lib._name)  # a CDLL call would release and retake the interpreter lock
        _set_types(fast, ACCESSORS)
        self._model_s, self._state_resets, self._set_knee = fast.nh_model_s, fast.nh_state_resets, fast.nh_set_knee
        self._out = np.ctypeslib.as_array((ctypes.c_float * cfg.hop_samples).from_address(lib.nh_output(handle)))
        self._process = lib.nh_process
        self._input: np.ndarray | None = None  # the latest input array and its address
        self._input_address = 0
        self.latency_samples = cfg.n_fft - cfg.hop_samples
        self.missed = False
        # nh_free joins the model thread first; the stepper (plan, weights) stays alive until it has. Not at
        # interpreter exit: a daemon worker thread may still be inside nh_process (the OS frees it all).
        weakref.finalize(self, _free_hop, lib, handle, stepper).atexit = False

    @property
    def model_s(self) -> float:
        """How long the latest finished model step took, in seconds (NaN before the first)."""
        return float(self._model_s(self._handle))

    @property
    def state_resets(self) -> int:
        """Times the model state was reset because frames had skipped it."""
        return int(self._state_resets(self._handle))

    def set_limiter_knee(self, knee_dbfs: float) -> None:
        """Use a new limiter knee (dBFS) from the next hop on (any thread)."""
        self._set_knee(self._handle, knee_gain(knee_dbfs))

    def process(self, hop: np.ndarray, run_model: bool, dry: float, deadline_s: float, slow_s: float) -> np.ndarray:
        """One hop; see ``HopProcessor.process``. ``hop`` must be (hop_samples,) contiguous float32 (not checked:
        this is the real-time path); passing the same array object each hop saves taking its address."""
        if hop is not self._input:
            self._input, self._input_address = hop, hop.ctypes.data
        self.missed = self._process(self._handle, self._input_address, run_model, dry, deadline_s, slow_s)
        return self._out

    def warm_up(self, frames: int) -> None:
        """Run the model on ``frames`` silent frames (on this thread) and go back to the zero state, so the
        first live hops are not slow; leaves the model thread as it is."""
        self._lib.nh_warm_up(self._handle, frames)

    def reset(self) -> None:
        """Back to the zero state (a fresh stream, not counted as a reset); waits for a step in progress and
        starts the model thread unless it runs, inheriting this thread's CPU affinity and priority (should that
        fail, model hops pass through and count as missed)."""
        self._lib.nh_reset(self._handle)

    def close(self) -> None:
        """Stop the model thread after the step in progress (idempotent); until the next ``reset``, model hops
        pass through and count as missed."""
        self._lib.nh_close(self._handle)


def _free_hop(lib: ctypes.CDLL, handle: int, stepper: NativeStepper) -> None:
    """Free the hop (``nh_free`` joins its model thread first); holds ``stepper`` alive until then."""
    lib.nh_free(handle)
