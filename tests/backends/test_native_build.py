"""The native backend's build: compiled once into the cache folder and reused; a missing or broken
compiler makes it unavailable with the reason (never a crash), and ``auto`` then falls back to onnx."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rtenhance import native_build
from rtenhance.backends import make_stepper, resolve_backend
from rtenhance.backends.native import NativeUnavailable, build_library, cache_dir, compiler, load_library
from tests.backends.test_backends import random_model

FAKE_COMPILER = """#!/bin/sh
if [ "$1" = --version ]; then echo "fake-cc 1.0"; exit 0; fi
echo "fake-cc: internal error" >&2
exit 1
"""


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder for this test (``$XDG_CACHE_HOME``)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return cache_dir()


def test_build_is_cached_and_reused(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_library(compiler(), fresh_cache)
    assert first.parent == fresh_cache and first.is_file()
    assert [p.name for p in fresh_cache.iterdir()] == [first.name]  # no temporary file left behind

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
