"""File output lines up with file input: the delay is cut at the start and the tail at the end."""

from __future__ import annotations

import numpy as np

from rtenhance.audio.realtime.file_align import OutputAligner


def test_delay_cut_at_start_and_tail_at_end_across_chunks():
    delay, total = 5, 17
    stream = np.arange(delay + total + 9, dtype=np.float32)  # delay, the aligned output, then a tail
    aligner = OutputAligner()
    aligner.restart(delay)
    parts = [aligner.trim(stream[i : i + 4]) for i in range(0, 12, 4)]
    aligner.end_at(total)
    parts += [aligner.trim(stream[i : i + 4]) for i in range(12, stream.shape[0], 4)]
    np.testing.assert_array_equal(np.concatenate(parts), stream[delay : delay + total])


def test_restart_forgets_the_previous_stream():
    aligner = OutputAligner()
    aligner.restart(2)
    aligner.end_at(1)
    assert aligner.trim(np.ones(8, dtype=np.float32)).shape == (1,)
    aligner.restart(0)
    assert aligner.trim(np.ones(8, dtype=np.float32)).shape == (8,)
