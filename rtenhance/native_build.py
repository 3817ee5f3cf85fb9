"""Small C libraries loaded with ctypes: the package's prebuilt copy, else built on first use and cached.

A ``CLibrary`` names one C source file with its flags (the same values as its entry in
``rtenhance.native_libraries``). ``CLibrary.load`` first looks for the library the package build compiled
into ``rtenhance/_native/`` (its file name holds a digest of the source and flags, so a stale one is never
used). Without it (an editable install, a build without a compiler), the source is compiled with ``$CC``
(default ``cc``) into the user's cache folder (``$XDG_CACHE_HOME/rtenhance``, else ``~/.cache/rtenhance``).

The cache is not trusted blindly: its folder is created (or tightened to) mode 0700 and must belong to the
user; a cached library must be a regular file owned by the user and writable by nobody else, and its
SHA-256 must equal the digest recorded beside it when it was built. The library is checked and loaded
through one open file descriptor, so it cannot be swapped in between. A library that fails a check, is
truncated, or lacks a symbol is rebuilt once. Builds go through a temporary file that is fsynced before
the rename. Without a working compiler (or with a failed build) ``CLibrary.load`` raises
``NativeUnavailable`` with the reason, and remembers that outcome for the rest of the process.
``$RTENHANCE_NATIVE_CFLAGS`` adds flags after every library's own (so they can override them; they are part
of the key), for example ``-fsanitize=thread -g`` for a sanitizer build.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shlex
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rtenhance.native_libraries import (
    KEY_HEX_CHARS, LIBRARIES, PACKAGE_DIR, PREBUILT_SUBDIR, prebuilt_name, source_bytes,
)

log = logging.getLogger(__name__)

DEFAULT_COMPILER = "cc"
EXTRA_CFLAGS_ENV = "RTENHANCE_NATIVE_CFLAGS"
CACHE_SUBDIR = "rtenhance"
COMPILE_TIMEOUT_S = 120.0
VERSION_TIMEOUT_S = 10.0
ERROR_TAIL_CHARS = 2000  # of the compiler's messages kept in the exception
PRIVATE_DIR_MODE = 0o700
LIBRARY_MODE = 0o700
DIGEST_SUFFIX = ".sha256"
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
ROOT_UID = 0
PROC_FD = Path("/proc/self/fd")


class NativeUnavailable(RuntimeError):
    """A native library cannot be built or loaded here; the message says why."""


class _Rejected(Exception):
    """A library file failed a check before or while loading; the message says which."""


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


def prebuilt_dir() -> Path:
    """Where the package build puts the compiled libraries (``rtenhance/_native``)."""
    return PACKAGE_DIR / PREBUILT_SUBDIR


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


def private_dir(folder: Path) -> None:
    """Create ``folder`` with mode 0700 (tighten it if it exists); refuse one that is not the user's own.

    Raises:
        NativeUnavailable: not a directory, or owned by someone else.
    """
    try:
        folder.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise NativeUnavailable(f"cache folder {folder} is not a directory of your own; not using it")
        if stat.S_IMODE(info.st_mode) != PRIVATE_DIR_MODE:
            os.chmod(folder, PRIVATE_DIR_MODE)
    except OSError as exc:
        raise NativeUnavailable(f"cannot use the cache folder {folder}: {exc}") from exc


def _check_owner(info: os.stat_result, path: Path, owners: set[int]) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise _Rejected(f"{path} is not a regular file")
    if info.st_uid not in owners:
        raise _Rejected(f"{path} belongs to uid {info.st_uid}, not to you")
    if info.st_mode & OTHERS_WRITE:
        raise _Rejected(f"{path} is writable by group or others")


def _read_checked(path: Path, owners: set[int]) -> tuple[int, bytes]:
    """Open ``path`` without following a link, check its owner and mode; (open descriptor, its bytes)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise _Rejected(f"cannot open {path}: {exc.strerror}") from exc
    try:
        _check_owner(os.fstat(fd), path, owners)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return fd, b"".join(chunks)
    except BaseException:
        os.close(fd)
        raise


_HELD_FDS: list[int] = []  # descriptors of loaded libraries, open for the process's life (see ``_dlopen``)


def _dlopen(fd: int, path: Path) -> ctypes.CDLL:
    """Load the library open on ``fd`` through ``/proc/self/fd``: the very file that was checked. On
    success ``fd`` stays open for the life of the process (the loader tells libraries apart by that name,
    so it must never name another file); the caller closes it only on failure."""
    target = PROC_FD / str(fd) if PROC_FD.is_dir() else path
    try:
        lib = ctypes.CDLL(str(target))
    except OSError as exc:
        raise _Rejected(f"cannot load {path}: {exc}") from exc
    _HELD_FDS.append(fd)
    return lib


def _open_fd(fd: int, path: Path) -> ctypes.CDLL:
    """``_dlopen``, closing ``fd`` when it fails."""
    try:
        return _dlopen(fd, path)
    except _Rejected:
        os.close(fd)
        raise


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class CLibrary:
    """One C source compiled to a shared library.

    Attributes:
        name: file-name prefix of the built library and what it is called in messages.
        source: the C file.
        cflags: compiler flags (``-shared -fPIC`` among them).
        libs: linker arguments after the source.
        declare: sets the loaded library's argument and result types (an ``AttributeError`` for a missing
            symbol makes the library rejected).
    """

    name: str
    source: Path
    cflags: tuple[str, ...]
    libs: tuple[str, ...]
    declare: Callable[[ctypes.CDLL], None]
    _loaded: dict[tuple[tuple[str, ...], Path, Path], ctypes.CDLL | NativeUnavailable] = field(
        default_factory=dict, compare=False, repr=False)  # per (compiler, cache folder, prebuilt folder)

    def path(self, cc: list[str], folder: Path) -> Path:
        """The cached library's path for this source, flags and compiler (asks the compiler its version)."""
        version = _run([*cc, "--version"], VERSION_TIMEOUT_S, "C compiler version check")
        key = hashlib.sha256()
        command = shlex.join([*cc, *self.cflags, *extra_cflags(), *self.libs])
        for part in (source_bytes(self.source), command.encode(), version.encode()):
            key.update(hashlib.sha256(part).digest())
        return folder / f"{self.name}-{key.hexdigest()[:KEY_HEX_CHARS]}.so"

    def prebuilt_path(self) -> Path:
        """Where the package build put this library (it may not exist)."""
        return prebuilt_dir() / prebuilt_name(self.name, self.source, self.cflags, self.libs)

    def build(self, cc: list[str], folder: Path) -> Path:
        """The library's path in the private cache folder, compiling it first unless the cache holds it
        with its digest (whether the cached file is intact is checked when it is loaded)."""
        private_dir(folder)
        path = self.path(cc, folder)
        if not path.is_file() or not _digest_path(path).is_file():
            compile_library(self, cc, path)
        return path

    def load(self) -> ctypes.CDLL:
        """The library, with its types declared: the package's prebuilt copy, else the cached build for
        the current ``$CC`` and cache folder, built if needed.

        Raises:
            NativeUnavailable: no prebuilt library and no working compiler, a failed build, or a library
                that does not load.
        """
        cc, folder = compiler(), cache_dir()
        key = (tuple(cc + extra_cflags()), folder, prebuilt_dir())
        if key not in self._loaded:
            try:
                # extra flags (a sanitizer build) always build from source
                prebuilt = None if extra_cflags() else self._load_prebuilt()
                self._loaded[key] = prebuilt or self._load_cached(cc, folder)
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

    def _load_prebuilt(self) -> ctypes.CDLL | None:
        """The package's library, or None (absent, or rejected: then logged and compiled instead)."""
        path = self.prebuilt_path()
        if not path.is_file():
            return None
        try:
            fd, _data = _read_checked(path, {os.geteuid(), ROOT_UID})
            return self._declared(_open_fd(fd, path), path)
        except _Rejected as exc:
            log.warning("packaged %s library not used (%s); compiling it instead", self.name, exc)
            return None

    def _load_cached(self, cc: list[str], folder: Path) -> ctypes.CDLL:
        path = self.build(cc, folder)
        try:
            return self._open_verified(path)
        except _Rejected as exc:
            log.warning("cached %s library rejected (%s); rebuilding it", self.name, exc)
        compile_library(self, cc, path)
        try:
            return self._open_verified(path)
        except _Rejected as exc:
            raise NativeUnavailable(str(exc)) from None

    def _open_verified(self, path: Path) -> ctypes.CDLL:
        """Check the cached file (owner, mode, recorded digest) and load that same open file."""
        owners = {os.geteuid()}
        digest_fd, recorded = _read_checked(_digest_path(path), owners)
        os.close(digest_fd)
        fd, data = _read_checked(path, owners)
        if hashlib.sha256(data).hexdigest() != recorded.decode("ascii", "replace").strip():
            os.close(fd)
            raise _Rejected(f"{path} does not match the digest recorded when it was built")
        return self._declared(_open_fd(fd, path), path)

    def _declared(self, lib: ctypes.CDLL, path: Path) -> ctypes.CDLL:
        try:
            self.declare(lib)
        except AttributeError as exc:
            raise _Rejected(f"{path} lacks a symbol: {exc}") from exc
        return lib


def listed_library(name: str, declare: Callable[[ctypes.CDLL], None]) -> CLibrary:
    """The ``CLibrary`` of the entry ``name`` of ``rtenhance.native_libraries.LIBRARIES``."""
    entry = next(e for e in LIBRARIES if e.name == name)
    return CLibrary(entry.name, PACKAGE_DIR / entry.source, entry.cflags, entry.libs, declare)


def _digest_path(library: Path) -> Path:
    return library.with_name(library.name + DIGEST_SUFFIX)


def _write_synced(folder: Path, prefix: str, data: bytes) -> str:
    """A new temporary file in ``folder`` (mode 0600) holding ``data``, fsynced; its path."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def compile_library(library: CLibrary, cc: list[str], target: Path) -> None:
    """Compile ``library`` to ``target`` in its private folder: through a temporary file that is made
    private and fsynced, with its SHA-256 recorded beside it, then renamed over ``target``.

    Raises:
        NativeUnavailable: the compiler failed, or the folder cannot be written.
    """
    private_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    digest_tmp = None
    try:
        _run([*cc, *library.cflags, *extra_cflags(), "-o", tmp, str(library.source), *library.libs],
             COMPILE_TIMEOUT_S, f"compiling {library.name}")
        os.chmod(tmp, LIBRARY_MODE)  # the linker recreates the file with the umask's mode
        with open(tmp, "rb") as built:
            data = built.read()
            os.fsync(built.fileno())
        digest_tmp = _write_synced(target.parent, target.name + ".digest.", hashlib.sha256(data).hexdigest().encode())
        os.replace(digest_tmp, _digest_path(target))
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        raise NativeUnavailable(f"cannot write {library.name} to {target.parent}: {exc}") from exc
    finally:
        for leftover in (tmp, digest_tmp):
            if leftover is not None and os.path.exists(leftover):
                os.unlink(leftover)
