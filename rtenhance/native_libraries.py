"""The one list of rtenhance's C libraries: name, source and flags, read by the package build and at run time.

Standard library only: ``setup.py`` loads this file by path, before rtenhance or its dependencies exist.
The package build compiles each entry into ``rtenhance/_native/`` under ``prebuilt_name``; the name holds
a digest of the source and the flags, so a library built from another version of the source is never
picked up (``rtenhance.native_build`` then compiles the current source on first use instead).

To add a library: append a ``NativeSource`` here and load it with ``CLibrary`` from the same values.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PREBUILT_SUBDIR = "_native"  # where the package build puts the libraries, inside the package
KEY_HEX_CHARS = 16  # of the SHA-256 in a library's file name
LIBRARY_SUFFIX = ".so"

LOCAL_INCLUDE = re.compile(rb'^#include "([^"/]+)"', re.MULTILINE)  # a header beside the source
PIPEWIRE_INCLUDES = ("-I/usr/include/pipewire-0.3", "-I/usr/include/spa-0.2")  # libpipewire-0.3-dev, any distribution
PORTABLE_FAST_MATH = ("-fno-math-errno", "-fno-trapping-math")  # no -ffast-math, no -march=native
BATCH_CFLAGS = ("-std=c99", "-O3", "-fPIC", "-shared", *PORTABLE_FAST_MATH, "-Wall", "-Wno-psabi")


@dataclass(frozen=True)
class NativeSource:
    """One C source compiled to a shared library.

    Attributes:
        name: file-name prefix of the built library and what it is called in messages.
        source: the C file, relative to the package folder.
        cflags: compiler flags (``-shared -fPIC`` among them).
        libs: linker arguments after the source.
    """

    name: str
    source: str
    cflags: tuple[str, ...]
    libs: tuple[str, ...] = ()


LIBRARIES: tuple[NativeSource, ...] = (
    NativeSource("gtcrn_step", "backends/native/gtcrn_step.c",
                 ("-std=c99", "-O3", "-fPIC", "-shared", *PORTABLE_FAST_MATH, "-Wall"), ("-lm",)),
    NativeSource("native_hop", "audio/realtime/native_hop.c",
                 ("-std=c11", "-O2", "-fPIC", "-shared", "-pthread", "-fno-math-errno", "-Wall"), ("-lm",)),
    NativeSource("native_pulse", "audio/io/native_pulse.c",
                 ("-std=c11", "-O2", "-fPIC", "-shared", "-pthread", "-Wall"), ("-l:libpulse.so.0",)),
    NativeSource("native_pipewire", "audio/io/native_pipewire.c",
                 ("-std=gnu11", "-O2", "-fPIC", "-shared", "-pthread", "-D_REENTRANT", *PIPEWIRE_INCLUDES, "-Wall"),
                 ("-l:libpipewire-0.3.so.0",)),
    NativeSource("native_watch", "audio/io/native_watch.c",
                 ("-std=c11", "-O2", "-fPIC", "-shared", "-pthread", "-Wall"), ("-l:libpulse.so.0",)),
    NativeSource("polyphase", "dsp/polyphase.c",
                 ("-std=c99", "-O3", "-fPIC", "-shared", *PORTABLE_FAST_MATH, "-Wall")),
    NativeSource("gtcrn_batch", "backends/native/gtcrn_batch.c", BATCH_CFLAGS, ("-lm",)),
    NativeSource("gtcrn_batch_avx2", "backends/native/gtcrn_batch.c",
                 (*BATCH_CFLAGS, "-mavx2", "-mfma", "-ffp-contract=fast"), ("-lm",)),
)


def local_headers(source: Path) -> list[Path]:
    """The headers beside ``source`` that it includes with ``#include "NAME"`` (the build depends on them)."""
    return [source.with_name(name.decode()) for name in LOCAL_INCLUDE.findall(source.read_bytes())]


def source_bytes(source: Path) -> bytes:
    """What a library is built from: the source's bytes, then each local header's (see ``local_headers``)."""
    return b"".join([source.read_bytes(), *(header.read_bytes() for header in local_headers(source))])


def source_key(source: Path, cflags: tuple[str, ...], libs: tuple[str, ...]) -> str:
    """Hex digest (``KEY_HEX_CHARS`` long) of a source file's and its local headers' bytes and its flags."""
    key = hashlib.sha256()
    for part in (source_bytes(source), shlex.join([*cflags, *libs]).encode()):
        key.update(hashlib.sha256(part).digest())
    return key.hexdigest()[:KEY_HEX_CHARS]


def prebuilt_name(name: str, source: Path, cflags: tuple[str, ...], libs: tuple[str, ...]) -> str:
    """File name of the package build's library for this source and these flags."""
    return f"{name}-{source_key(source, cflags, libs)}{LIBRARY_SUFFIX}"
