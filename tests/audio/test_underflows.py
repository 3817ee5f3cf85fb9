"""UnderflowTally: underflows by cause since start, without each session's start-up."""

from __future__ import annotations

from rtenhance.audio.realtime.underflows import FIRST, NONE, RING, SERVER, UnderflowTally


def test_causes_per_hop_and_totals_across_sessions():
    tally = UnderflowTally()
    assert tally.hop(40, 40, 0) == FIRST  # start-up: 40 dry reads before the first hop, not counted
    assert tally.hop(40, 40, 0) == NONE
    assert tally.hop(42, 40, 0) == SERVER  # the server ran dry while the ring held audio
    assert tally.hop(43, 41, 0) == RING
    assert tally.totals(43, 41) == (3, 2)
    tally.end_session(44, 41)  # one more server xrun before the streams closed
    tally.end_session(44, 41)  # idempotent
    assert tally.totals(0, 0) == (4, 3)  # the new session's counters restart; its start-up is not counted
    assert tally.hop(7, 7, 0) == FIRST
    assert tally.hop(8, 8, 0) == RING and tally.totals(8, 8) == (5, 3)


def test_cycles_the_server_ran_without_the_sink_read_as_its_xrun_but_are_no_underflow():
    """A PipeWire graph cycle our playback missed: the sink played silence while the ring held audio (unless
    it waited), so the jitter buffer treats the excess it leaves as a server's xrun's (resampled away, not
    dropped); it is counted as missed, not as an underflow."""
    tally = UnderflowTally()
    assert tally.hop(0, 0, 0) == FIRST
    assert tally.hop(0, 0, 256) == SERVER
    assert tally.hop(0, 0, 256) == NONE
    assert tally.totals(0, 0) == (0, 0)
