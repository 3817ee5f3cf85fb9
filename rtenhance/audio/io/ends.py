"""What the engine needs of the two ends of the audio path: ``Source`` and ``Sink``.

Implementations: PortAudio streams and files (``streams``), libpulse-simple streams (``pulse_streams``)
and the C libpulse streams (``native_pulse``). Device ends are opened, started and closed by the
``Supervisor``; file ends are opened once and closed at the end.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from rtenhance.audio.io.ring import SpscRing


class End(Protocol):
    """What both ends share.

    Attributes:
        rate: sample rate in Hz.
        channels: interleaved channels (the sink is always mono).
        device: True for a live device (reopened after a fault), False for a file.
        status_flags: xruns the device or the server reported itself, beyond the ring's own counters.
        gap_samples: samples of server cycles that ran without this end since it was made (PipeWire: a
            graph cycle the stream's thread woke too late for): a source writes them as silence, so that what
            follows keeps its place in time; for a sink they are only counted (the sink waited for it or
            played silence); 0 where no cycle can run without the stream.
    """

    rate: int
    channels: int
    device: bool
    status_flags: int
    gap_samples: int

    def open(self) -> None:
        """Open the device or file (idempotent). Raises ``DeviceError`` when it cannot."""
        ...

    def start(self, prefill: int = 0) -> None:
        """Start moving audio; a sink first queues ``prefill`` samples of silence."""
        ...

    def device_latency_s(self) -> float:
        """Latency the device or server reports beyond the ring, in seconds (0 for files)."""
        ...

    def fault(self, stall_s: float) -> str | None:
        """Why the end is no longer usable (for example no audio for ``stall_s`` s), or None."""
        ...

    def close(self) -> None:
        """Stop and release the device (idempotent)."""
        ...


class Source(End, Protocol):
    """Where audio comes from: a ring the device fills (interleaved float32 frames)."""

    ring: SpscRing

    def pump(self) -> None:
        """Move what arrived into the ring, for sources with no thread of their own (files)."""
        ...

    def wait_input(self, samples: int, expected_s: float) -> None:
        """Block until the ring holds ``samples`` samples, at most about ``expected_s`` s."""
        ...

    @property
    def exhausted(self) -> bool:
        """A file read to its end (never for a device)."""
        ...


class Sink(End, Protocol):
    """Where audio goes: a mono ring the device drains, or a file.

    Attributes:
        cushion_s: how far below empty ``depth_samples`` may fall before anything is heard, in s: audio the
            server still holds when it asks for more, which covers a write that comes late (libpulse: see
            ``native_pulse``); 0 where a device plays silence for what the ring lacks when it asks.
    """

    cushion_s: float

    @property
    def realtime(self) -> bool:
        """True when a device plays the ring on its own clock; False for a file."""
        ...

    def write(self, samples: np.ndarray) -> None:
        """Queue (N,) float32 samples."""
        ...

    def depth_samples(self) -> int:
        """Samples queued and not yet taken by the device (below 0: owed to a device that waits for them)."""
        ...

    def underflows(self) -> int:
        """Times the device found the ring short since start (it played silence instead), with the xruns
        the device or server reported itself."""
        ...

    def ring_underflows(self) -> int:
        """The part of ``underflows`` where the ring itself ran dry (rtenhance late); the rest are xruns of
        the device or server while the ring held audio (audio handed over too late)."""
        ...
