"""The engine's latency accounting: the audio in flight after each hop, averaged per stats interval, plus the
latency the devices report, and the output ring depth a user's ``latency.target_ms`` asks for.

All times in seconds. ``add`` runs on the worker each hop and only adds floats; ``take_ms`` runs on the stats
thread (a torn read of the two running totals costs one interval's average a hop, nothing more).
"""

from __future__ import annotations

from rtenhance.audio.io.ends import Sink, Source

FLOOR_DEADBAND_S = 0.003  # the ring floor follows the devices' latency only when it moved this much: the readings
# wander by up to 3 ms from one second to the next (PortAudio's capture, measured), and every move of the floor is
# an error the jitter buffer corrects by resampling, which time-warps the output


class LatencyMeter:
    """Running totals of the engine delay and the devices' latest reported latency.

    Args:
        fixed_s: delay outside the rings that never changes: the STFT overlap and the resampler filters, s.
        hop_s: the hop duration, s (half of it is pending input on average).

    Attributes:
        device_s: capture + playback latency the streams reported at the latest ``refresh``, s.
    """

    def __init__(self, fixed_s: float, hop_s: float) -> None:
        self.device_s = 0.0
        self._floor_device_s = 0.0  # the device latency the ring floor is computed with, s
        self._outside_ring_s = fixed_s + hop_s / 2
        self._sum = 0.0
        self._count = 0
        self._reported = (0.0, 0)

    def refresh(self, source: Source, sink: Sink, *, restart: bool = False) -> None:
        """Re-read the devices' reported latency (about once a second). The ring floor takes it when it moved
        by more than ``FLOOR_DEADBAND_S`` or on ``restart`` (new streams, or their first audio: until then
        nothing has been measured and the readings are 0)."""
        self.device_s = source.device_latency_s() + sink.device_latency_s()
        if restart or abs(self.device_s - self._floor_device_s) > FLOOR_DEADBAND_S:
            self._floor_device_s = self.device_s

    def add(self, engine_delay_s: float) -> None:
        """One hop's engine delay: the audio in flight between the two devices right after its write, s."""
        self._sum += engine_delay_s
        self._count += 1

    def take_ms(self) -> float | None:
        """The mean end-to-end delay since the previous call in ms (engine delay + devices), None without hops."""
        total, count = self._sum, self._count
        last_total, last_count = self._reported
        self._reported = (total, count)
        if count <= last_count:
            return None
        return 1e3 * ((total - last_total) / (count - last_count) + self.device_s)

    def ring_floor_s(self, target_s: float, cushion_s: float) -> float:
        """The output's playable depth (the ring plus the sink's ``cushion_s``, s) that makes the end-to-end
        delay ``target_s`` (0: no target, auto), s."""
        return max(0.0, target_s - self._floor_device_s - self._outside_ring_s + cushion_s) if target_s > 0 else 0.0
