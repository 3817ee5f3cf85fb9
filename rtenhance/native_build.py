"""Small C libraries built on first use with the system C compiler, cached, and loaded with ctypes.

A ``CLibrary`` names one C source file with its flags. It is compiled with ``$CC`` (default ``cc``) into
the user's cache folder (``$XDG_CACHE_HOME/rtenhance``, else ``~/.cache/rtenhance``), under a file name
keyed by the SHA-256 of the source, the flags and the compiler's version, written atomically, and reused
by every later process. Without a working compiler (or with a failed build) ``CLibrary.load`` raises
``NativeUnavailable`` with the reason, and remembers that outcome for the rest of the process.
``$RTENHANCE_NATIVE_CFLAGS`` adds flags after every library's own (so they can override them; they are part
of the key), for example ``-fsanitize=thread -g`` for a sanitizer build.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_COMPILER = "cc"
EXTRA_CFLAGS_ENV = "RTENHANCE_NATIVE_CFLAGS"
CACHE_SUBDIR = "rtenhance"
KEY_HEX_CHARS = 16  # of the SHA-256 in the library's file name
COMPILE_TIMEOUT_S = 120.0
VERSION_TIMEOUT_S = 10.0
ERROR_TAIL_CHARS = 2000  # of the compiler's messages kept in the exception


class NativeUnavailable(RuntimeError):
    """A native library cannot be built or loaded here; the message says why."""


def compiler() -> list[str]:
    """The C compiler command: ``$CC`` split like a shell word list, else ``cc``."""
    return shlex.split(os.environ.get("CC", "")) or [DEFAULT_COMPILER]


def extra_cflags() -> list[str]:
    """Flags added to every library's: ``$RTENHANCE_NATIVE_CFLAGS`` split like a shell word list."""
    return shlex.split(os.environ.get(EXTRA_CFLAGS_ENV, ""))


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


@dataclass(frozen=True)
class CLibrary:
    """One C source compiled to a shared library.

    Attributes:
        name: file-name prefix of the built library and what it is called in messages.
        source: the C file.
        cflags: compiler flags (``-shared -fPIC`` among them).
        libs: linker arguments after the source.
        declare: sets the loaded library's argument and result types.
    """

    name: str
    source: Path
    cflags: tuple[str, ...]
    libs: tuple[str, ...]
    declare: Callable[[ctypes.CDLL], None]
    _loaded: dict[tuple[tuple[str, ...], Path], ctypes.CDLL | NativeUnavailable] = field(
        default_factory=dict, compare=False, repr=False)  # per (compiler, cache folder)

    def path(self, cc: list[str], folder: Path) -> Path:
        """The cached library's path for this source, flags and compiler (asks the compiler its version)."""
        version = _run([*cc, "--version"], VERSION_TIMEOUT_S, "C compiler version check")
        key = hashlib.sha256()
        command = shlex.join([*cc, *self.cflags, *extra_cflags(), *self.libs])
        for part in (self.source.read_bytes(), command.encode(), version.encode()):
            key.update(hashlib.sha256(part).digest())
        return folder / f"{self.name}-{key.hexdigest()[:KEY_HEX_CHARS]}.so"

    def build(self, cc: list[str], folder: Path) -> Path:
        """The library's path, compiling it first unless the cache already holds it."""
        path = self.path(cc, folder)
        if not path.is_file():
            try:
                compile_library(self, cc, path)
            except OSError as exc:
                raise NativeUnavailable(f"cannot write {self.name} to {folder}: {exc}") from exc
        return path

    def load(self) -> ctypes.CDLL:
        """The library for the current ``$CC`` and cache folder, built if needed, with its types declared.

        Raises:
            NativeUnavailable: no working compiler, a failed build, or a library that does not load.
        """
        cc, folder = compiler(), cache_dir()
        key = (tuple(cc + extra_cflags()), folder)
        if key not in self._loaded:
            try:
                self._loaded[key] = self._open(self.build(cc, folder))
            except NativeUnavailable as exc:
                self._loaded[key] = exc
        outcome = self._loaded[key]
        if isinstance(outcome, NativeUnavailable):
            raise outcome
        return outcome

    def unavailable_reason(self) -> str | None:
        """Why the library cannot be used here, or None when it can (builds it on the first call)."""
        try:
            self.load()
        except NativeUnavailable as exc:
            return str(exc)
        return None

    def _open(self, path: Path) -> ctypes.CDLL:
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise NativeUnavailable(f"cannot load {path}: {exc}") from exc
        self.declare(lib)
        return lib


def compile_library(library: CLibrary, cc: list[str], target: Path) -> None:
    """Compile ``library`` to ``target`` through a temporary file in the same folder (atomic replace)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        _run([*cc, *library.cflags, *extra_cflags(), "-o", tmp, str(library.source), *library.libs],
             COMPILE_TIMEOUT_S, f"compiling {library.name}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
