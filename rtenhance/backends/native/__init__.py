"""Native backend: one streaming GTCRN step in a small C library (``gtcrn_step.c``), called through ctypes.

The library is compiled on first use with the system C compiler (``$CC``, default ``cc``) into the user's
cache folder (``$XDG_CACHE_HOME/rtenhance``, else ``~/.cache/rtenhance``), under a file name keyed by the
SHA-256 of the source, the flags and the compiler's version, written atomically, and reused by every
later process. The flags are portable (no ``-march=native``, no ``-ffast-math``), so a home folder shared
between machines never loads a binary that does not fit its CPU. Without a working compiler,
``load_library`` raises ``NativeUnavailable`` with the reason.

``NativeStepper`` prepares everything once: the plan and weight blob (``plan.py``), two state sets, a
scratch buffer and the foreign call's arguments. A hop is one ``np.copyto`` and one foreign call that reads
one state set and writes the other; the two then swap roles.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from rtenhance.backends.native.plan import build_plan
from rtenhance.model.gtcrn import GTCRN
from rtenhance.model.state import StreamState

SOURCE = Path(__file__).with_name("gtcrn_step.c")
DEFAULT_COMPILER = "cc"
CFLAGS = ("-std=c99", "-O3", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math", "-Wall")
LIBS = ("-lm",)
CACHE_SUBDIR = "rtenhance"
LIBRARY_PREFIX = "gtcrn_step-"
KEY_HEX_CHARS = 16  # of the SHA-256 in the library's file name
COMPILE_TIMEOUT_S = 120.0
VERSION_TIMEOUT_S = 10.0
ERROR_TAIL_CHARS = 2000  # of the compiler's messages kept in the exception
BUFFER_ALIGN_BYTES = 64
FLOAT_BYTES = 4


class NativeUnavailable(RuntimeError):
    """The native library cannot be built or loaded here; the message says why."""


_loaded: dict[tuple[tuple[str, ...], Path], ctypes.CDLL | NativeUnavailable] = {}  # per (compiler, cache folder)


def compiler() -> list[str]:
    """The C compiler command: ``$CC`` split like a shell word list, else ``cc``."""
    return shlex.split(os.environ.get("CC", "")) or [DEFAULT_COMPILER]


def cache_dir() -> Path:
    """Where built libraries are kept: ``$XDG_CACHE_HOME/rtenhance``, else ``~/.cache/rtenhance``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / CACHE_SUBDIR


def _run(command: list[str], timeout_s: float, what: str) -> str:
    """Run ``command``; its stdout, or ``NativeUnavailable`` naming ``what`` failed and why."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NativeUnavailable(f"{what} ({shlex.join(command)}) failed: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-ERROR_TAIL_CHARS:]
        raise NativeUnavailable(f"{what} ({shlex.join(command)}) exited with status {done.returncode}: {tail}")
    return done.stdout


def library_path(cc: list[str], folder: Path) -> Path:
    """The cached library's path for this source, flags and compiler (asks the compiler its version)."""
    version = _run([*cc, "--version"], VERSION_TIMEOUT_S, "C compiler version check")
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), shlex.join([*cc, *CFLAGS, *LIBS]).encode(), version.encode()):
        key.update(hashlib.sha256(part).digest())
    return folder / f"{LIBRARY_PREFIX}{key.hexdigest()[:KEY_HEX_CHARS]}.so"


def _compile(cc: list[str], target: Path) -> None:
    """Compile the source to ``target`` through a temporary file in the same folder (atomic replace)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        _run([*cc, *CFLAGS, "-o", tmp, str(SOURCE), *LIBS], COMPILE_TIMEOUT_S, "compiling the native backend")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_library(cc: list[str], folder: Path) -> Path:
    """The library's path, compiling it first unless the cache already holds it."""
    path = library_path(cc, folder)
    if not path.is_file():
        try:
            _compile(cc, path)
        except OSError as exc:
            raise NativeUnavailable(f"cannot write the native library to {folder}: {exc}") from exc
    return path


def _open(path: Path) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise NativeUnavailable(f"cannot load {path}: {exc}") from exc
    lib.gtcrn_scratch_floats.argtypes = [ctypes.c_void_p]
    lib.gtcrn_scratch_floats.restype = ctypes.c_int64
    lib.gtcrn_step.argtypes = [ctypes.c_void_p] * 7
    lib.gtcrn_step.restype = None
    return lib


def load_library() -> ctypes.CDLL:
    """The native library for the current ``$CC`` and cache folder, built if needed; the outcome (library
    or failure) is remembered for the rest of the process.

    Raises:
        NativeUnavailable: no working compiler, a failed build, or a library that does not load.
    """
    cc, folder = compiler(), cache_dir()
    key = (tuple(cc), folder)
    if key not in _loaded:
        try:
            _loaded[key] = _open(build_library(cc, folder))
        except NativeUnavailable as exc:
            _loaded[key] = exc
    outcome = _loaded[key]
    if isinstance(outcome, NativeUnavailable):
        raise outcome
    return outcome


def unavailable_reason() -> str | None:
    """Why the native backend cannot run here, or None when it can (builds it on the first call)."""
    try:
        load_library()
    except NativeUnavailable as exc:
        return str(exc)
    return None


def _aligned_zeros(floats: int) -> np.ndarray:
    """A zeroed float32 array of ``floats`` whose data starts on a ``BUFFER_ALIGN_BYTES`` boundary."""
    raw = np.zeros(floats + BUFFER_ALIGN_BYTES // FLOAT_BYTES, dtype=np.float32)
    skip = (-raw.ctypes.data % BUFFER_ALIGN_BYTES) // FLOAT_BYTES
    return raw[skip : skip + floats]


class NativeStepper:
    """One stream of ``model.step`` in the native library (see the module docstring).

    Args:
        model: the network; its weights are copied (later changes to it are not seen).

    Raises:
        NativeUnavailable: the library cannot be built or loaded, or does not accept the model's plan.
    """

    def __init__(self, model: GTCRN) -> None:
        lib = load_library()
        plan = build_plan(model)
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
        """A copy of the current state, as ``GTCRN.step`` would hold it."""
        current = self._views[self._turn]
        return StreamState.from_named_tensors({name: torch.from_numpy(v.copy()) for name, v in current.items()})
