"""Build of rtenhance's C libraries into the wheel (the metadata is in pyproject.toml).

Each entry of ``rtenhance/native_libraries.py`` becomes a setuptools ``Extension`` (a plain shared library
loaded with ctypes, not a Python module), written to ``rtenhance/_native/`` under a file name that holds
a digest of its source and flags. A library that fails to compile is left out with one line on stderr;
rtenhance then compiles it on first use, or runs without it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
PACKAGE = "rtenhance"


def _native_libraries():  # type: ignore[no-untyped-def]
    """``rtenhance/native_libraries.py`` loaded by path (the package's dependencies are not installed yet)."""
    spec = importlib.util.spec_from_file_location("rtenhance_native_libraries", HERE / PACKAGE / "native_libraries.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


NATIVE = _native_libraries()
ENTRIES = {entry.name: entry for entry in NATIVE.LIBRARIES}
LINK_ONLY = {"-shared"}  # setuptools links shared objects itself
BOTH = {"-pthread"}  # needed when compiling and when linking
NO_DEBUG_INFO = "-g0"  # Python's own CFLAGS ask for -g: a third of the size, of no use to users


def _extension(entry) -> Extension:  # type: ignore[no-untyped-def]
    return Extension(
        name=f"{PACKAGE}.{NATIVE.PREBUILT_SUBDIR}.{entry.name}",
        sources=[f"{PACKAGE}/{entry.source}"],
        depends=[str(h.relative_to(HERE)) for h in NATIVE.local_headers(HERE / PACKAGE / entry.source)],
        extra_compile_args=[*(f for f in entry.cflags if f not in LINK_ONLY), NO_DEBUG_INFO],
        extra_link_args=[*(f for f in entry.cflags if f in BOTH), *entry.libs],
    )


class BuildNativeLibraries(build_ext):
    """``build_ext`` for plain shared libraries: digest-keyed file names, a failure is one line, not fatal."""

    def get_ext_filename(self, fullname: str) -> str:
        entry = ENTRIES.get(fullname.rpartition(".")[2])
        if entry is None:
            return super().get_ext_filename(fullname)
        source = HERE / PACKAGE / entry.source
        name = NATIVE.prebuilt_name(entry.name, source, entry.cflags, entry.libs)
        return str(Path(*fullname.split(".")[:-1], name))

    def copy_extensions_to_source(self) -> None:
        (HERE / PACKAGE / NATIVE.PREBUILT_SUBDIR).mkdir(exist_ok=True)  # editable installs copy them there
        super().copy_extensions_to_source()

    def get_export_symbols(self, ext: Extension) -> list[str]:
        return []  # no PyInit_ function: these are not Python modules

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # compiler missing or failing: the package still works without it
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            print(f"rtenhance: native library {ext.name} not built ({reason}); it will be compiled on first use",
                  file=sys.stderr)


setup(
    ext_modules=[_extension(entry) for entry in NATIVE.LIBRARIES],
    cmdclass={"build_ext": BuildNativeLibraries},
)
