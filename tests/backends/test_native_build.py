"""The native backend's build: compiled once into the cache folder and reused; a missing or broken
compiler makes it unavailable with the reason (never a crash), and ``auto`` then falls back to onnx.
The package's prebuilt library is preferred; the cache is private and every cached library is checked
(owner, mode, recorded digest, symbols) before it is loaded, and rebuilt when a check fails."""

from __future__ import annotations

import dataclasses
import importlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from rtenhance import native_build
from rtenhance.backends import make_stepper, resolve_backend
from rtenhance.backends.native import LIBRARY, NativeUnavailable, build_library, cache_dir, compiler, load_library
from rtenhance.native_build import CLibrary
from rtenhance.native_libraries import LIBRARIES, PACKAGE_DIR, prebuilt_name
from tests.backends.test_backends import random_model

OTHER_UID = 12345  # a user that is not the test's
LIBRARY_MODULES = {  # library name: (module, attribute holding its CLibrary)
    "gtcrn_step": ("rtenhance.backends.native", "LIBRARY"),
    "gtcrn_batch": ("rtenhance.backends.native.batch", "PORTABLE"),
    "gtcrn_batch_avx2": ("rtenhance.backends.native.batch", "AVX2"),
    "native_hop": ("rtenhance.audio.realtime.native_hop", "LIBRARY"),
    "native_pulse": ("rtenhance.audio.io.native_pulse", "LIBRARY"),
    "native_pipewire": ("rtenhance.audio.io.native_pulse", "PIPEWIRE_LIBRARY"),
    "native_watch": ("rtenhance.audio.io.native_watch", "LIBRARY"),
    "polyphase": ("rtenhance.dsp.polyphase", "LIBRARY"),
}

FAKE_COMPILER = """#!/bin/sh
if [ "$1" = --version ]; then echo "fake-cc 1.0"; exit 0; fi
echo "fake-cc: internal error" >&2
exit 1
"""


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder for this test (``$XDG_CACHE_HOME``), and no prebuilt libraries."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(native_build, "prebuilt_dir", lambda: tmp_path / "no-prebuilt")
    return cache_dir()


def fresh(library: CLibrary) -> CLibrary:
    """The same library with nothing loaded yet in this process."""
    return dataclasses.replace(library, _loaded={})


def digest_of(path: Path) -> str:
    return native_build.hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_is_cached_and_reused(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_library(compiler(), fresh_cache)
    assert first.parent == fresh_cache and first.is_file()
    assert sorted(p.name for p in fresh_cache.iterdir()) == [first.name, first.name + ".sha256"]  # no temporary file
    assert stat.S_IMODE(fresh_cache.stat().st_mode) == 0o700
    assert (fresh_cache / (first.name + ".sha256")).read_text() == digest_of(first)

    def no_compile(*_args: object) -> None:
        raise AssertionError("compiled again although the cache holds the library")

    monkeypatch.setattr(native_build, "compile_library", no_compile)
    assert build_library(compiler(), fresh_cache) == first
    model = random_model()
    make_stepper(model, "native")  # loads the cached library


@pytest.mark.parametrize("cc", ["false", "no-such-compiler-rtenhance", "fake"])
def test_unusable_compiler_makes_native_unavailable(
    cc: str, fresh_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if cc == "fake":
        script = tmp_path / "fake-cc"
        script.write_text(FAKE_COMPILER)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        cc = str(script)
    monkeypatch.setenv("CC", cc)
    with pytest.raises(NativeUnavailable, match="failed|status"):
        load_library()
    with pytest.raises(ValueError, match="backend 'native' is unavailable"):
        make_stepper(random_model(), "native")
    assert resolve_backend("auto") == "onnx"
    assert not fresh_cache.exists() or not any(fresh_cache.iterdir())


def test_extra_cflags_are_part_of_the_build_and_its_key(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = build_library(compiler(), fresh_cache)
    monkeypatch.setenv(native_build.EXTRA_CFLAGS_ENV, "-O0 -g")
    debug = build_library(compiler(), fresh_cache)
    assert b".debug_info" not in plain.read_bytes()
    assert debug != plain and debug.is_file() and b".debug_info" in debug.read_bytes()
    monkeypatch.setenv(native_build.EXTRA_CFLAGS_ENV, "-no-such-flag-rtenhance")
    with pytest.raises(NativeUnavailable, match="no-such-flag-rtenhance"):
        build_library(compiler(), fresh_cache)


def test_cache_folder_is_private_whatever_the_umask(fresh_cache: Path) -> None:
    old = os.umask(0)
    try:
        fresh_cache.mkdir(parents=True, mode=0o777)
        path = build_library(compiler(), fresh_cache)
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh_cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_cache_folder_of_another_user_is_refused(fresh_cache: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the folder to another user")
    fresh_cache.mkdir(parents=True, mode=0o700)
    os.chown(fresh_cache, OTHER_UID, OTHER_UID)
    with pytest.raises(NativeUnavailable, match="not a directory of your own"):
        fresh(LIBRARY).load()


def _planted(fresh_cache: Path, how: str) -> Path:
    """Build the library, then spoil the cached file as ``how`` says; returns its path."""
    path = build_library(compiler(), fresh_cache)
    if how == "foreign owner":
        if os.geteuid() != 0:
            pytest.skip("needs root to give the file to another user")
        os.chown(path, OTHER_UID, OTHER_UID)
    elif how == "world-writable":
        path.chmod(0o777)
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # would crash the loader with SIGBUS if it were mapped
    elif how == "missing symbols":
        other = next(e for e in LIBRARIES if e.name == "polyphase")
        subprocess.run([*compiler(), *other.cflags, "-o", str(path), str(PACKAGE_DIR / other.source)], check=True)
        path.chmod(0o700)
        (path.parent / (path.name + ".sha256")).write_text(digest_of(path))  # a consistent but foreign library
    return path


@pytest.mark.parametrize("how", ["foreign owner", "world-writable", "truncated", "missing symbols"])
def test_spoilt_cached_library_is_rebuilt(how: str, fresh_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _planted(fresh_cache, how)
    lib = fresh(LIBRARY).load()
    assert lib.gtcrn_scratch_floats is not None
    assert "rejected" in caplog.text and "rebuilding" in caplog.text
    info = path.stat()
    assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077 == 0
    assert (path.parent / (path.name + ".sha256")).read_text() == digest_of(path)
    make_stepper(random_model(), "native")


def test_prebuilt_library_is_loaded_without_a_compiler(
    fresh_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prebuilt = tmp_path / "prebuilt"
    prebuilt.mkdir()
    name = prebuilt_name(LIBRARY.name, LIBRARY.source, LIBRARY.cflags, LIBRARY.libs)
    subprocess.run([*compiler(), *LIBRARY.cflags, "-o", str(prebuilt / name), str(LIBRARY.source), *LIBRARY.libs],
                   check=True)
    stale = prebuilt / name.replace(name.split("-")[1][:4], "0000")
    stale.write_bytes(b"not a library")  # another source's build is never opened
    monkeypatch.setattr(native_build, "prebuilt_dir", lambda: prebuilt)
    monkeypatch.setenv("CC", "false")
    lib = fresh(LIBRARY).load()
    assert lib.gtcrn_scratch_floats is not None
    assert not fresh_cache.exists()


def test_every_library_module_uses_the_listed_sources_and_flags() -> None:
    assert sorted(LIBRARY_MODULES) == sorted(e.name for e in LIBRARIES)
    for entry in LIBRARIES:
        module, attribute = LIBRARY_MODULES[entry.name]
        library = getattr(importlib.import_module(module), attribute)
        assert (library.name, library.source, library.cflags, library.libs) == (
            entry.name, PACKAGE_DIR / entry.source, entry.cflags, entry.libs)
