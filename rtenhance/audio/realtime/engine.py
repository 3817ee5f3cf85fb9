"""The real-time hop loop: capture ring -> 16 kHz hop -> playback ring, in a worker thread.

Per 16 ms hop the worker resamples the device audio to 16 kHz, runs the ``HopProcessor`` (STFT, the model
behind its gate, iSTFT, soft limiter; in C or in Python, see ``rtenhance.audio.realtime.hop``), resamples to the
playback rate and through ``DriftResampler`` at the ratio ``PlayoutController`` asks for, and writes the
playback ring. The pieces around it each have their module:
- ``Supervisor`` opens the ends, notices faults and reopens them with backoff;
- ``PlayoutController`` holds the output ring at the depth the observed jitter needs (adaptive jitter
  buffer), takes up clock drift by resampling, and drops audio only after a stall;
- ``skips`` decides when the model does not run, and ``SkipCounts`` says why (``ring_low``, ``overload``,
  ``bypass``); ``OverloadGuard`` rests the model after a real overload;
- ``StaleCapture`` drops captured audio made stale by a stall at once (``backlog_ms``);
- ``LatencyMeter`` averages the delay in flight per stats interval and adds the devices' reported latency.

Latency (s): the engine delay is the audio in flight between the capture and playback callbacks (input ring,
the hop being assembled, STFT overlap, resampler filters, output ring); end to end adds the devices' own.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable

import numpy as np

from rtenhance.audio.realtime.splice import splice
from rtenhance.audio.realtime.stale_capture import StaleCapture, hop_frames
from rtenhance.audio.io.ends import Sink, Source
from rtenhance.audio.realtime.file_align import OutputAligner
from rtenhance.audio.realtime.gate import dry_gain, model_wanted
from rtenhance.audio.realtime.hop import HopProcessor
from rtenhance.audio.realtime.latency import LatencyMeter
from rtenhance.audio.realtime.overload import OverloadGuard
from rtenhance.audio.realtime.playout import PlayoutController
from rtenhance.audio.realtime.underflows import FIRST, RING, SERVER, UnderflowTally
from rtenhance.audio.io.pulse import PresenceWatch
from rtenhance.audio.realtime.skips import SkipCounts, StepTimes, ring_low, step_deadline_s
from rtenhance.audio.realtime.supervisor import Supervisor
from rtenhance.audio.realtime.thread_priority import promote
from rtenhance.config import StftConfig
from rtenhance.dsp.fractional import DriftResampler
from rtenhance.dsp.polyphase import PolyphaseResampler
from rtenhance.runtime_config import RuntimeConfig
from rtenhance.stats import CpuMeter, HopTimes, StatsSnapshot, hop_percentiles

log = logging.getLogger(__name__)

MAX_SLEEP_S = 0.005  # the worker re-checks stop and faults at least this often
MIN_SLEEP_S = 0.0005  # shortest wait for input
MAX_HOPS_PER_READ = 8  # input read per worker iteration, in hops (bounds the catch-up burst)
DEVICE_LATENCY_REFRESH_HOPS = 64  # re-read the devices' reported latency about once a second
SETTLE_HOPS = 64  # hops after a session opens before a low ring counts as ring_low (the prefill settles)
PRIME_S = 0.1  # the first hop of a session tops the output ring up with silence in chunks of this, s
SPLICE_FADE_S = 0.002  # crossfade across a drop
WORKER_PRIORITY = 5  # real-time priority of the worker when allowed: below the stream I/O thread


class Engine:
    """Runs the audio path in a worker thread until ``stop()`` or the end of a file source."""

    def __init__(
        self,
        cfg: RuntimeConfig,
        processor: HopProcessor,
        stft_cfg: StftConfig,
        source: Source,
        sink: Sink,
        watch: PresenceWatch | None = None,
        heartbeat: Callable[[], None] = lambda: None,
    ) -> None:
        """Args:
        cfg: the configuration; ``configure`` replaces it while running.
        processor: the 16 kHz hop (STFT, model, iSTFT, limiter); the engine closes it when it finishes.
        stft_cfg: the model's STFT (16 kHz, 256-sample hops).
        source: where audio comes from (not yet open).
        sink: where audio goes (not yet open).
        watch: presence of named pulse devices, or None.
        heartbeat: called from the worker loop (the systemd watchdog).
        """
        self._cfg = cfg
        self.processor = processor
        self.source, self.sink = source, sink
        self.heartbeat = heartbeat
        self.model_rate = stft_cfg.sample_rate
        self.hop = stft_cfg.hop_samples
        self.hop_s = self.hop / self.model_rate
        self.bypass = cfg.enhance.bypass
        self.ready, self.finished = threading.Event(), threading.Event()
        self.hop_times, self.skips = HopTimes(), SkipCounts()
        self.mode = "starting"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.supervisor = Supervisor(source, sink, watch, heartbeat, self._stop)
        self._down = PolyphaseResampler(source.rate, self.model_rate)
        self._up = PolyphaseResampler(self.model_rate, sink.rate)
        up_max = int(math.ceil(self.hop * sink.rate / self.model_rate)) + 8
        self._drift = DriftResampler(up_max)
        # fixed for the engine's life: STFT overlap, both resampler filters and the drift resampler (s)
        self._filters_s = (self._down.delay_seconds + self._up.delay_seconds
                           + (self._drift.delay_samples / sink.rate if sink.realtime else 0.0))
        self._algorithmic_s = processor.latency_samples / self.model_rate + self._filters_s
        self._pending = np.zeros(self.hop * (MAX_HOPS_PER_READ + 4), dtype=np.float32)
        self._hop_input = self._pending[: self.hop]  # the same array each hop (NativeHop keeps its address)
        self._in_buffer = np.zeros(self._frames_per_read() * source.channels, dtype=np.float32)
        self._limiter_db = cfg.enhance.limiter_knee_dbfs
        self._hop_cfg: RuntimeConfig | None = None  # the configuration the per-hop settings below come from
        self._strength_dry = 0.0  # noisy gain of the strength mix (without bypass)
        self._slow_s = 0.0
        self._guard, self._steps = OverloadGuard(), StepTimes()
        self._playout = PlayoutController(self.hop_s, cfg.latency.headroom_ms / 1e3)
        self._splice_fade = max(1, int(SPLICE_FADE_S * sink.rate))
        self._latency = LatencyMeter(self._algorithmic_s, self.hop_s)
        self._underflows = UnderflowTally()
        self._silence = np.zeros(int(PRIME_S * sink.rate), dtype=np.float32)
        self._stale = StaleCapture(source.rate, source.channels, hop_frames(self.hop, source.rate, self.model_rate))
        self._aligner = OutputAligner()  # file sinks only
        self._session_hops = self._frames_in = self._hops_done = self._pending_count = 0
        self._cpu = CpuMeter()

    # ---- control (any thread) ----

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="rtenhance-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the worker to finish, and wait for it (streams closed when this returns)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def configure(self, cfg: RuntimeConfig) -> None:
        """Apply a reloaded configuration (its runtime keys) from the next hop on; ``enhance.bypass``
        replaces a SIGUSR1 toggle only when the file changed it."""
        if cfg.enhance.bypass != self._cfg.enhance.bypass:
            self.bypass = cfg.enhance.bypass
        self._cfg = cfg

    def toggle_bypass(self) -> bool:
        """Flip bypass; returns the new state."""
        self.bypass = not self.bypass
        return self.bypass

    @property
    def device_errors(self) -> int:
        """Device losses and failed opens since start."""
        return self.supervisor.device_errors

    @property
    def passthrough_hops(self) -> int:
        """Hops that skipped the model for a reason other than bypass (``ring_low`` + ``overload``)."""
        return self.skips.unwanted

    def snapshot(self) -> StatsSnapshot:
        """Statistics since the previous snapshot (counters since start); called from the stats thread."""
        hop_ms = self.hop_times.take()
        p50, p95, p99, pmax = hop_percentiles(hop_ms)
        realtime = self.sink.realtime
        latency = self._latency.take_ms() if realtime else None
        skips = self.skips
        underflows, underflows_server = self._underflows.totals(self.sink.underflows(), self.sink.ring_underflows())
        return StatsSnapshot(
            hops=int(hop_ms.shape[0]),
            hop_ms_p50=p50, hop_ms_p95=p95, hop_ms_p99=p99, hop_ms_max=pmax,
            rtf=float(hop_ms.mean() / (1e3 * self.hop_s)) if hop_ms.shape[0] else math.nan,
            latency_ms=latency,
            latency_target_ms=self._cfg.latency.target_ms,
            step_p99_ms=1e3 * self._steps.p99_s,
            overflows=self.source.status_flags + self.source.ring.overflows,
            underflows=underflows,
            underflows_server=underflows_server,
            passthrough_hops=skips.unwanted,
            skipped_ring_low=skips.ring_low,
            skipped_overload=skips.overload,
            skipped_bypass=skips.bypass,
            state_resets=self.processor.state_resets,
            adjust_ms=1e3 * (self._playout.dropped_s - self._playout.filled_s),
            backlog_ms=1e3 * self._stale.dropped_s,
            missed_in_ms=1e3 * self.source.gap_samples / self.source.rate,
            missed_out_ms=1e3 * self.sink.gap_samples / self.sink.rate,
            drift_ppm=self._playout.drift_ppm if realtime else 0.0,
            jitter_ms=1e3 * self._playout.span_s if realtime else 0.0,
            device_errors=self.device_errors,
            mode=self.mode,
            cpu_percent=self._cpu.sample(),
        )

    # ---- worker thread ----

    def _frames_per_read(self) -> int:
        return hop_frames(MAX_HOPS_PER_READ * self.hop, self.source.rate, self.model_rate)

    def _run(self) -> None:
        supervisor = self.supervisor
        if self.sink.realtime:
            promote(threading.get_native_id(), "worker", WORKER_PRIORITY)
        try:
            while supervisor.open_until_ready(lambda: self._cfg.devices, self._prepare_session, self._reconnecting):
                self.ready.set()
                fault = self._process()
                if fault is None:
                    break
                self._underflows.end_session(self.sink.underflows(), self.sink.ring_underflows())
                self.mode = "reconnecting"
                supervisor.lost(fault)
        finally:
            self._underflows.end_session(self.sink.underflows(), self.sink.ring_underflows())
            supervisor.close_all()
            self.processor.close()
            self.finished.set()

    def _reconnecting(self) -> None:
        self.mode = "reconnecting"

    def _prepare_session(self) -> int:
        """Both ends are open: reset the pipeline; returns the playback prefill in samples."""
        self.processor.reset()
        self._down.reset()
        self._up.reset()
        self._drift.reset()
        self._pending_count = 0
        self._latency.refresh(self.source, self.sink, restart=True)
        self._playout.restart()
        self._playout.headroom_s = self._cfg.latency.headroom_ms / 1e3
        self._aligner.restart(0 if self.sink.realtime else round(self.sink.rate * self._algorithmic_s))
        self._frames_in = 0
        self._session_hops = 0
        self._stale.restart()
        if not self.sink.realtime:
            return 0
        # silence until the first hop tops the ring up (``_prime``): more would be delay to work off while measuring
        return max(0, int(self.sink.rate * (self._playout.headroom_s - self.sink.cushion_s)))

    def _process(self) -> str | None:
        """Process until stop, end of file (None) or a device fault (its description)."""
        stall_s = self._cfg.devices.stall_s
        source = self.source
        channels = source.channels
        while not self._stop.is_set():
            self.heartbeat()
            self._stale.passed(time.monotonic())
            fault = self.supervisor.fault(stall_s)
            if fault:
                return fault
            source.pump()
            available = source.ring.available // channels
            needed = self._frames_for_next_hop()
            if available < needed and not source.exhausted:
                source.wait_input(needed * channels, self._sleep_s(available))
                continue
            if available == 0:  # a file source has been read to its end
                self._drain()
                return None
            if self.sink.realtime:
                available = self._stale.drop(source.ring, available, self._in_buffer, time.monotonic())
            frames = min(available, self._in_buffer.shape[0] // channels)
            block = self._in_buffer[: frames * channels]
            self._stale.read(source.ring, block)
            self._frames_in += frames
            mono = block.reshape(frames, channels).mean(axis=1) if channels > 1 else block  # (frames,)
            self._push(self._down.process(mono))
            self._run_hops()
        return None

    def _run_hops(self) -> None:
        while self._pending_count >= self.hop:
            self._hop(self._hop_input)
            self._pending[: self._pending_count - self.hop] = self._pending[self.hop : self._pending_count]
            self._pending_count -= self.hop
            self._hops_done += 1
            self._session_hops += 1
            if self._hops_done % DEVICE_LATENCY_REFRESH_HOPS == 0:
                self._latency.refresh(self.source, self.sink)

    def _frames_for_next_hop(self) -> int:
        """Input frames still needed before the next hop is complete (at least 1)."""
        return max(1, math.ceil((self.hop - self._pending_count) * self.source.rate / self.model_rate))

    def _sleep_s(self, available: int) -> float:
        """How long to wait for the rest of the next hop's input."""
        return min(MAX_SLEEP_S, max(MIN_SLEEP_S, (self._frames_for_next_hop() - available) / self.source.rate))

    def _push(self, samples: np.ndarray) -> None:
        n = samples.shape[0]
        self._pending[self._pending_count : self._pending_count + n] = samples
        self._pending_count += n

    def _apply_config(self, cfg: RuntimeConfig) -> None:
        """Take the per-hop settings from a new configuration (worker thread, between hops)."""
        if self._limiter_db != cfg.enhance.limiter_knee_dbfs:
            self._limiter_db = cfg.enhance.limiter_knee_dbfs
            self.processor.set_limiter_knee(self._limiter_db)
        self._strength_dry = dry_gain(cfg.enhance.attenuation_limit_db)
        self._slow_s = cfg.debug.slow_hop_ms / 1e3
        self._playout.headroom_s = cfg.latency.headroom_ms / 1e3
        self._hop_cfg = cfg

    def _hop(self, hop: np.ndarray) -> None:
        cfg = self._cfg
        start = time.perf_counter()
        if cfg is not self._hop_cfg:
            self._apply_config(cfg)
        sink, realtime = self.sink, self.sink.realtime
        dry = 1.0 if self.bypass else self._strength_dry
        run_model = model_wanted(dry)
        deadline_s = math.inf
        ring_s = self._playable_s() if realtime else math.inf
        if not run_model:
            self.skips.bypass += 1
        elif not self._guard.allow(time.monotonic()):
            run_model = False
            self.skips.overload += 1
        elif realtime:
            if self._session_hops >= SETTLE_HOPS and ring_low(ring_s, self._steps):
                run_model = False
                self.skips.ring_low += 1
            deadline_s = step_deadline_s(ring_s, self._steps)
        out = self.processor.process(hop, run_model, dry, deadline_s, self._slow_s)
        if run_model:
            if self.processor.missed:
                self.skips.overload += 1
                self._playout.disturbed()
                self._guard.missed(time.monotonic(), deadline_s, self._steps.p99_s, cfg.latency.recover_s)
            else:
                self._steps.add(self.processor.model_s)
        chunk = self._up.process(out)
        if realtime:
            chunk = self._play(chunk)
        else:
            chunk = self._aligner.trim(chunk)
        sink.write(chunk)
        self.hop_times.add(1e3 * (time.perf_counter() - start))
        self.mode = "bypass" if not model_wanted(dry) else ("enhance" if self._guard.enhancing else "passthrough")
        if realtime:
            self._latency.add(self._engine_delay_s())

    def _play(self, chunk: np.ndarray) -> np.ndarray:
        """A real-time chunk through the playout control: observe the ring, resample for drift, drop a stall,
        fill a lack at a session's start."""
        sink, playout = self.sink, self._playout
        playout.floor_s = self._latency.ring_floor_s(self._cfg.latency.target_ms / 1e3, sink.cushion_s)
        seen = self._underflows.hop(sink.underflows(), sink.ring_underflows(), sink.gap_samples)
        if seen == FIRST:
            self._prime()
        else:
            if self._stale.recovering(time.monotonic()):
                playout.disturbed()  # dips and underflows after a stall of our own are not the timing's
            elif seen == RING:
                if self._session_hops >= SETTLE_HOPS:  # before, the ring is still filling, not the timing's
                    playout.underflowed()
            elif seen == SERVER:
                playout.device_xrun()
            playout.observe(self._playable_s())
        chunk = self._drift.process(chunk, playout.ratio)
        drop_s = playout.take_drop()
        if drop_s > 0:
            jump = min(int(drop_s * sink.rate), chunk.shape[0] - self._splice_fade - 1)
            if jump > 0:
                chunk = splice(chunk, jump, self._splice_fade)
                playout.dropped(jump / sink.rate)
        if (fill_s := playout.take_fill()) > 0:  # a session's first seconds: a lack is filled at once (playout.py)
            playout.filled(self._write_silence(round(fill_s * sink.rate)) / sink.rate)
        return chunk

    def _prime(self) -> None:
        """The session's first hop: top the ring up with silence to the controller's target (the headroom, or a
        latency target: resampling fills 2 ms a second), from the devices' latency read now (before any audio
        they report 0; see docs/DAEMON.md)."""
        self._latency.refresh(self.source, self.sink, restart=True)
        self._playout.floor_s = self._latency.ring_floor_s(self._cfg.latency.target_ms / 1e3, self.sink.cushion_s)
        self._write_silence(round((self._playout.target_s - self._playable_s()) * self.sink.rate))

    def _playable_s(self) -> float:
        """How long the output plays on before a gap is heard, in s: the ring (below 0 while the server waits
        for a late write) and the cushion the server keeps when it asks (``Sink.cushion_s``)."""
        return self.sink.depth_samples() / self.sink.rate + self.sink.cushion_s

    def _write_silence(self, samples: int) -> int:
        """Write ``samples`` (<= a 2 s target) of silence in PRIME_S chunks; returns how many (0 if <= 0)."""
        for start in range(0, samples, self._silence.shape[0]):
            self.sink.write(self._silence[: min(self._silence.shape[0], samples - start)])
        return max(0, samples)

    def _engine_delay_s(self) -> float:
        """Audio in flight between the two callbacks right after a hop was written, in seconds."""
        in_ring = self.source.ring.available / self.source.channels / self.source.rate
        pending = (self._pending_count - self.hop) / self.model_rate  # the hop just written is still counted
        out_ring = self.sink.depth_samples() / self.sink.rate
        return in_ring + pending + self._algorithmic_s + out_ring

    def _drain(self) -> None:
        """End of a file source: push silence through so that every input sample reaches the sink."""
        self._aligner.end_at(round(self._frames_in * self.sink.rate / self.source.rate))
        tail = self._algorithmic_s * self.model_rate + self.hop
        self._push(np.zeros(int(math.ceil(tail)), dtype=np.float32))
        self._run_hops()
