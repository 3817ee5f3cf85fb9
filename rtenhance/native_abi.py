"""A check that a ctypes mirror of a C struct has the layout the C compiler gave the struct.

A C library whose struct Python reads through a ``ctypes.Structure`` exports ``<name>_layout(uint64_t *out,
uint64_t n)``: it writes the struct's ``sizeof`` and then each field's ``offsetof`` and ``sizeof`` in
declaration order (at most ``n`` values) and returns how many values there are. ``check_layout`` compares
that with the mirror when the library loads, so a mirror that has drifted from the C source is refused
with ``NativeUnavailable`` (and the caller's fallback runs) instead of reading the wrong bytes.
"""

from __future__ import annotations

import ctypes

from rtenhance.native_build import NativeUnavailable

MAX_LAYOUT_VALUES = 256  # room for the C side's answer: sizeof + 2 per field


def mirror_layout(mirror: type[ctypes.Structure]) -> list[int]:
    """The mirror's layout as the C side reports it: sizeof, then (offset, size) of each field, in bytes."""
    layout = [ctypes.sizeof(mirror)]
    for name, *_ in mirror._fields_:
        field = getattr(mirror, name)
        layout += [field.offset, field.size]
    return layout


def check_layout(lib: ctypes.CDLL, function: str, mirror: type[ctypes.Structure]) -> None:
    """Refuse ``lib`` unless ``mirror`` has the layout its ``function`` reports.

    Args:
        lib: the loaded library.
        function: name of the exported layout function (see the module docstring).
        mirror: the ctypes mirror of the struct that ``function`` describes.

    Raises:
        NativeUnavailable: the library lacks ``function``, or the layouts differ (the message shows both).
    """
    try:
        report = getattr(lib, function)
    except AttributeError as exc:
        raise NativeUnavailable(f"{lib._name} has no {function}: it does not match this rtenhance") from exc
    report.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_uint64]
    report.restype = ctypes.c_uint64
    values = (ctypes.c_uint64 * MAX_LAYOUT_VALUES)()
    count = int(report(values, MAX_LAYOUT_VALUES))
    actual = list(values[: min(count, MAX_LAYOUT_VALUES)])
    expected = mirror_layout(mirror)
    if count != len(expected) or actual != expected:
        raise NativeUnavailable(
            f"the ctypes mirror {mirror.__name__} does not match the C struct in {lib._name} "
            f"(sizeof, then offset and size of each field: C {actual}, Python {expected})")
