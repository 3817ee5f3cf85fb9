"""The real-time engine: capture ring -> worker (16 kHz enhancement) -> playback ring, inside a budget.

The worker thread owns all DSP and model state. Per 16 ms hop it resamples the device audio to 16 kHz,
runs the ``HopProcessor`` (STFT, the model behind ``FrameGate``'s semantics: strength mix, passthrough,
bypass, deadline; iSTFT and the soft limiter; in C or in Python, see ``rtenhance.audio.hop``), resamples
to the playback rate, lets the ``DelayController`` drop or insert a few samples to hold the latency
target, and writes the playback ring. ``OverloadGuard`` decides per hop whether the model runs. Device
faults close the streams, are logged once and retried with backoff.

Latency bookkeeping (all in seconds): the engine delay is the audio in flight between the capture and
playback callbacks: input ring + the hop being assembled + STFT overlap (one hop) + resampler filter
delays + output ring. End to end adds the device latencies PortAudio reports. With a target T, the
engine delay is held at T - device latencies, and what exceeds the structural minimum (two hops plus
the filters) is the time one hop may take to compute (its budget).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable

import numpy as np

from rtenhance.audio.delay import DelayController
from rtenhance.audio.devices import DeviceError, refind
from rtenhance.audio.file_align import OutputAligner
from rtenhance.audio.gate import dry_gain, model_wanted
from rtenhance.audio.hop import HopProcessor
from rtenhance.audio.native_pulse import NativePulseCapture, NativePulsePlayback
from rtenhance.audio.overload import OverloadGuard
from rtenhance.audio.pulse import PresenceWatch
from rtenhance.audio.pulse_streams import PulseCapture, PulsePlayback
from rtenhance.audio.streams import Capture, FileSink, FileSource, Playback, reinitialize_portaudio
from rtenhance.config import StftConfig
from rtenhance.dsp.polyphase import PolyphaseResampler
from rtenhance.runtime_config import RuntimeConfig
from rtenhance.stats import CpuMeter, HopTimes, StatsSnapshot, hop_percentiles

log = logging.getLogger(__name__)

MIN_BUDGET_S = 0.002  # the smallest compute budget per hop, whatever the target says
DEADLINE_MARGIN_S = 0.004  # the rest of a hop after the model (iSTFT, resampling) and thread wake-up...
DEADLINE_MARGIN_FRACTION = 0.25  # ...or this share of the output ring, whichever is larger
MIN_DEADLINE_S = 0.001  # with less time than this left, the model is not asked at all
MAX_SLEEP_S = 0.005  # the worker re-checks stop and faults at least this often
MIN_SLEEP_S = 0.0005  # shortest wait for input
RETRY_POLL_S = 0.1  # while waiting to reopen a device, stop and the watchdog are served this often
MAX_HOPS_PER_READ = 8  # input read per worker iteration, in hops (bounds the catch-up burst)
DEVICE_LATENCY_REFRESH_HOPS = 64  # re-read the devices' reported latency about once a second
TARGET_DEADBAND_S = 0.005  # the latency target ignores smaller moves of the devices' latency estimate

Source = Capture | PulseCapture | NativePulseCapture | FileSource
Sink = Playback | PulsePlayback | NativePulsePlayback | FileSink
DEVICE_ENDS = (Capture, Playback, PulseCapture, PulsePlayback, NativePulseCapture, NativePulsePlayback)


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
        self.source = source
        self.sink = sink
        self.watch = watch
        self.heartbeat = heartbeat
        self.model_rate = stft_cfg.sample_rate
        self.hop = stft_cfg.hop_samples
        self.hop_s = self.hop / self.model_rate
        self.bypass = cfg.enhance.bypass
        self.ready = threading.Event()
        self.finished = threading.Event()
        self.hop_times = HopTimes()
        self.passthrough_hops = 0
        self.device_errors = 0
        self.mode = "starting"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down = PolyphaseResampler(source.rate, self.model_rate)
        self._up = PolyphaseResampler(self.model_rate, sink.rate)
        # fixed for the engine's life, so computed once: STFT overlap plus both resampler filters (s)
        self._filters_s = self._down.delay_seconds + self._up.delay_seconds
        self._algorithmic_s = processor.latency_samples / self.model_rate + self._filters_s
        self._pending = np.zeros(self.hop * (MAX_HOPS_PER_READ + 4), dtype=np.float32)
        self._pending_count = 0
        self._hop_input = self._pending[: self.hop]  # the same array each hop (NativeHop keeps its address)
        self._in_buffer = np.zeros(self._frames_per_read() * source.channels, dtype=np.float32)
        self._limiter_db = cfg.enhance.limiter_knee_dbfs
        self._hop_cfg: RuntimeConfig | None = None  # the configuration the per-hop settings below come from
        self._strength_dry = 0.0  # noisy gain of the strength mix (without bypass)
        self._slow_s = 0.0
        self._guard = OverloadGuard()
        self._controller = DelayController(sink.rate, 0.0)
        self._device_latency_s = 0.0  # capture + playback latency PortAudio reports, latest reading
        self._target_device_latency_s = 0.0  # the reading the latency target was last set from
        self._delay_sum = 0.0
        self._delay_count = 0
        self._reported = (0.0, 0)
        self._aligner = OutputAligner()  # file sinks only
        self._frames_in = 0
        self._hops_done = 0
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
    def structural_delay_s(self) -> float:
        """Smallest engine delay: hop assembly + STFT overlap (two hops) and both resampler filters."""
        return 2 * self.hop_s + self._filters_s

    def budget_s(self) -> float:
        """Compute time a hop may take: the engine delay target above its structural minimum."""
        if not self.sink.realtime:
            return math.inf
        return max(MIN_BUDGET_S, self._engine_target_s() - self.structural_delay_s)

    def _engine_target_s(self) -> float:
        target = self._cfg.latency.target_ms / 1e3 - self._target_device_latency_s
        return max(target, self.structural_delay_s + MIN_BUDGET_S)

    def snapshot(self) -> StatsSnapshot:
        """Statistics since the previous snapshot (counters since start); called from the stats thread."""
        hop_ms = self.hop_times.take()
        p50, p95, p99, pmax = hop_percentiles(hop_ms)
        total, count = self._delay_sum, self._delay_count
        last_total, last_count = self._reported
        self._reported = (total, count)
        latency = None
        if self.sink.realtime and count > last_count:
            latency = 1e3 * ((total - last_total) / (count - last_count) + self._device_latency_s)
        source_ring, sink_ring = self.source.ring, self.sink.ring
        underflows = self.sink.status_flags + (sink_ring.underflows if sink_ring is not None else 0)
        return StatsSnapshot(
            hops=int(hop_ms.shape[0]),
            hop_ms_p50=p50, hop_ms_p95=p95, hop_ms_p99=p99, hop_ms_max=pmax,
            rtf=float(hop_ms.mean() / (1e3 * self.hop_s)) if hop_ms.shape[0] else math.nan,
            latency_ms=latency,
            latency_target_ms=self._cfg.latency.target_ms,
            hop_budget_ms=1e3 * self.budget_s(),
            overflows=self.source.status_flags + source_ring.overflows,
            underflows=underflows,
            passthrough_hops=self.passthrough_hops,
            state_resets=self.processor.state_resets,
            adjust_ms=1e3 * self._controller.adjusted_samples / self.sink.rate,
            device_errors=self.device_errors,
            mode=self.mode,
            cpu_percent=self._cpu.sample(),
        )

    # ---- worker thread ----

    def _frames_per_read(self) -> int:
        return int(math.ceil(MAX_HOPS_PER_READ * self.hop * self.source.rate / self.model_rate))

    def _run(self) -> None:
        backoff = self._cfg.devices.retry_initial_s
        lost_since: float | None = None
        try:
            while not self._stop.is_set():
                try:
                    self._open()
                except DeviceError as exc:
                    if lost_since is None:
                        lost_since = time.monotonic()
                        self.device_errors += 1
                        log.warning("audio device unavailable: %s; retrying", exc)
                    self.mode = "reconnecting"
                    self._wait(backoff)
                    backoff = min(2 * backoff, self._cfg.devices.retry_max_s)
                    continue
                if lost_since is not None:
                    log.info("audio device back after %.1f s: resumed", time.monotonic() - lost_since)
                lost_since, backoff = None, self._cfg.devices.retry_initial_s
                self.ready.set()
                fault = self._process()
                self._close_devices()
                if fault is None:
                    break
                lost_since = time.monotonic()
                self.device_errors += 1
                self.mode = "reconnecting"
                log.warning("audio device lost: %s; retrying", fault)
        finally:
            self._close_devices()
            for end in (self.source, self.sink):
                end.close()
            self.processor.close()
            self.finished.set()

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.heartbeat()
            self._stop.wait(min(RETRY_POLL_S, max(0.0, deadline - time.monotonic())))

    def _open(self) -> None:
        """Open both ends, prefill the output ring with the budget's worth of silence, start them."""
        if self.watch is not None:
            self.watch.refresh()
            if self.watch.missing:
                raise DeviceError(self.watch.missing)
        portaudio = [end for end in (self.source, self.sink) if isinstance(end, (Capture, Playback))]
        if self.device_errors and portaudio:
            reinitialize_portaudio()
            for end in portaudio:
                end.endpoint = refind(end.endpoint)
        try:
            self.sink.open()
            self.source.open()
        except DeviceError:
            self._close_devices()
            raise
        self._reset_pipeline()
        # at start the device fills its whole buffer (up to twice its reported latency) from the ring at once;
        # the ring must then still hold the budget plus one hop. The controller removes any excess.
        prefill_s = 2 * self.sink.device_latency_s() + self.budget_s() + self.hop_s if self.sink.realtime else 0.0
        self.sink.start(int(self.sink.rate * prefill_s))
        self.source.start()

    def _close_devices(self) -> None:
        for end in (self.source, self.sink):
            if isinstance(end, DEVICE_ENDS):
                end.close()

    def _reset_pipeline(self) -> None:
        self.processor.reset()
        self._down.reset()
        self._up.reset()
        self._pending_count = 0
        self._device_latency_s = self.source.device_latency_s() + self.sink.device_latency_s()
        self._target_device_latency_s = self._device_latency_s
        self._controller.restart(self._engine_target_s())
        self._aligner.restart(0 if self.sink.realtime else round(self.sink.rate * self._algorithmic_s))
        self._frames_in = 0

    def _process(self) -> str | None:
        """Process until stop, end of file (None) or a device fault (its description)."""
        stall_s = self._cfg.devices.stall_s
        while not self._stop.is_set():
            self.heartbeat()
            fault = self.source.fault(stall_s) or self.sink.fault(stall_s) or (self.watch and self.watch.missing)
            if fault:
                return fault
            self.source.pump()
            channels = self.source.channels
            available = self.source.ring.available // channels
            needed = self._frames_for_next_hop()
            if available < needed and not self.source.exhausted:
                self.source.wait_input(needed * channels, self._sleep_s(available))
                continue
            if available == 0:  # a file source has been read to its end
                self._drain()
                return None
            frames = min(available, self._in_buffer.shape[0] // channels)
            block = self._in_buffer[: frames * channels]
            self.source.ring.read_into(block)
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
            if self._hops_done % DEVICE_LATENCY_REFRESH_HOPS == 0:
                self._refresh_device_latency()

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

    def _refresh_device_latency(self) -> None:
        """Re-read the devices' reported latency: always for the stats, for the target only when it moved."""
        self._device_latency_s = self.source.device_latency_s() + self.sink.device_latency_s()
        if abs(self._device_latency_s - self._target_device_latency_s) > TARGET_DEADBAND_S:
            self._target_device_latency_s = self._device_latency_s

    def _apply_config(self, cfg: RuntimeConfig) -> None:
        """Take the per-hop settings from a new configuration (worker thread, between hops)."""
        if self._limiter_db != cfg.enhance.limiter_knee_dbfs:
            self._limiter_db = cfg.enhance.limiter_knee_dbfs
            self.processor.set_limiter_knee(self._limiter_db)
        self._strength_dry = dry_gain(cfg.enhance.attenuation_limit_db)
        self._slow_s = cfg.debug.slow_hop_ms / 1e3
        self._hop_cfg = cfg

    def _hop(self, hop: np.ndarray) -> None:
        cfg = self._cfg
        start = time.perf_counter()
        if cfg is not self._hop_cfg:
            self._apply_config(cfg)
        processor, realtime = self.processor, self.sink.realtime
        dry = 1.0 if self.bypass else self._strength_dry
        wants_model = model_wanted(dry)
        run_model = self._guard.allow(time.monotonic())
        deadline_s = math.inf
        if realtime:
            # the output ring plays for ring_s more: the model must be done well before, with room for the
            # rest of the hop and for the worker being scheduled late
            ring_s = self.sink.depth_samples() / self.sink.rate
            deadline_s = ring_s - max(DEADLINE_MARGIN_S, DEADLINE_MARGIN_FRACTION * ring_s)
            # a ring already this low (start, device hiccup) is not the model's fault: skip it, no overload
            run_model = run_model and deadline_s >= MIN_DEADLINE_S
            self._controller.target_s = self._engine_target_s()
        chunk = self._up.process(processor.process(hop, run_model, dry, deadline_s, self._slow_s))
        missed = processor.missed
        if missed:
            self._guard.overloaded(time.monotonic(), f"the model missed its {1e3 * max(0.0, deadline_s):.1f} ms "
                                   f"deadline (last step {1e3 * processor.model_s:.1f} ms)", cfg.latency.recover_s)
        if wants_model and not run_model or missed:
            self.passthrough_hops += 1
        if realtime:
            chunk = self._controller.correct(chunk)
        else:
            chunk = self._aligner.trim(chunk)
        self.sink.write(chunk)
        self.hop_times.add(1e3 * (time.perf_counter() - start))
        self.mode = "bypass" if not wants_model else ("enhance" if self._guard.enhancing else "passthrough")
        if realtime:
            delay = self._engine_delay_s()
            self._controller.observe(delay)
            self._delay_sum += delay
            self._delay_count += 1

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
