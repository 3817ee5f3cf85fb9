"""check_layout: a ctypes mirror is accepted only with the layout the C compiler gave its struct."""

from __future__ import annotations

import ctypes

import pytest

from rtenhance.audio.io import native_pulse
from rtenhance.native_abi import check_layout, mirror_layout
from rtenhance.native_build import NativeUnavailable

pytestmark = pytest.mark.skipif(native_pulse.unavailable_reason() is not None,
                                reason=f"native pulse library unavailable: {native_pulse.unavailable_reason()}")
LAYOUT_FUNCTION = "rtp_stats_layout"


def _drifted(fields: list[tuple[str, type]]) -> type[ctypes.Structure]:
    return type("DriftedStats", (ctypes.Structure,), {"_fields_": fields})


def test_the_stats_mirror_matches_the_c_struct() -> None:
    lib = native_pulse.LIBRARY.load()
    check_layout(lib, LAYOUT_FUNCTION, native_pulse._Stats)
    layout = mirror_layout(native_pulse._Stats)
    assert layout[0] == ctypes.sizeof(native_pulse._Stats) and len(layout) == 1 + 2 * len(native_pulse._Stats._fields_)


@pytest.mark.parametrize("change", ["narrower field", "missing field", "inserted field"])
def test_a_drifted_mirror_is_refused(change: str) -> None:
    fields = list(native_pulse._Stats._fields_)
    if change == "narrower field":
        fields[-1] = (fields[-1][0], ctypes.c_int16)
    elif change == "missing field":
        fields = fields[:-1]
    else:
        fields.insert(3, ("extra", ctypes.c_uint64))
    with pytest.raises(NativeUnavailable, match="ctypes mirror DriftedStats does not match the C struct"):
        check_layout(native_pulse.LIBRARY.load(), LAYOUT_FUNCTION, _drifted(fields))


def test_a_library_without_the_layout_function_is_refused() -> None:
    with pytest.raises(NativeUnavailable, match="has no no_such_layout"):
        check_layout(native_pulse.LIBRARY.load(), "no_such_layout", native_pulse._Stats)


def test_the_watch_head_mirror_matches_the_c_struct() -> None:
    from rtenhance.audio.io import native_watch

    lib = native_watch.LIBRARY.load()
    check_layout(lib, "rtw_head_layout", native_watch._Head)
    with pytest.raises(NativeUnavailable, match="does not match the C struct"):
        check_layout(lib, "rtw_head_layout", _drifted(list(native_watch._Head._fields_)[1:]))
