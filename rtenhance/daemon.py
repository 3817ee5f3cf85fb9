"""The daemon's lifecycle: build the audio path, signals, readiness and watchdog, stats, reload, stop.

Signals only set flags that the main thread acts on: SIGTERM/SIGINT stop (streams closed, virtual
devices removed, within a second), SIGHUP reloads the runtime keys from the configuration file
(strength, latency budget, stats interval) without reopening the streams, SIGUSR1 toggles bypass.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

from rtenhance.audio.io.devices import FILE_PREFIX, VIRTUAL_MIC, Endpoint, resolve
from rtenhance.audio.realtime.engine import Engine, Sink, Source
from rtenhance.audio.realtime.huge_pages import disable_huge_pages
from rtenhance.audio.realtime.hop import HopProcessor, make_hop_processor
from rtenhance.audio.io.native_pulse import (
    LIBRARY, PIPEWIRE_LIBRARY, NativePulseCapture, NativePulsePlayback, PulseConnection,
)
from rtenhance.audio.io.native_pulse import unavailable_reason as native_pulse_unavailable
from rtenhance.audio.io.native_watch import start_watch
from rtenhance.audio.io.pulse import PresenceWatch, on_pipewire
from rtenhance.audio.io.pulse_streams import PulseCapture, PulsePlayback
from rtenhance.audio.io.streams import Capture, FileSink, FileSource, Playback
from rtenhance.audio.io.virtual_mic import VIRTUAL_SOURCE, VirtualMic
from rtenhance.config import ConfigError, StftConfig
from rtenhance.notify import SystemdNotifier
from rtenhance.runtime_config import RuntimeConfig, reloaded, restart_only_changes
from rtenhance.stats import JsonLinesWriter, RateLimitedWarning, StatsSnapshot, interval_warnings

log = logging.getLogger("rtenhance")

STOP_TIMEOUT_S = 0.8  # the worker gets this long to close the streams on stop
READY_POLL_S = 0.05  # how often start-up checks whether the streams run
XRUN_WARN_PERIOD_S = 60.0  # at most one warning of each kind (skips, xruns, drops) a minute
WARMUP_FRAMES = 20  # model steps run before the streams open (first calls are slow)
EXIT_VIRTUAL_MIC_LOST = 3  # the virtual microphone could not be recreated in time: systemd restarts us


def raise_priority(nice: int) -> None:
    """Ask for scheduling priority ``nice`` before any thread starts (threads inherit it); keep the
    current one if that is already higher or the system refuses."""
    try:
        if nice < os.getpriority(os.PRIO_PROCESS, 0):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
            log.info("running at nice %d", nice)
    except OSError as exc:
        log.debug("keeping the current priority (nice %d not allowed: %s)", nice, exc.strerror)


def pin_cpus(cpus: tuple[int, ...]) -> None:
    """Restrict the calling thread, and so every thread it starts later, to ``cpus`` (empty: leave as is).

    Raises:
        ConfigError: a CPU this process may not run on.
    """
    if not cpus:
        return
    allowed = sorted(os.sched_getaffinity(0))
    if not set(cpus) <= set(allowed):
        raise ConfigError(f"engine.cpus: {list(cpus)!r} is not allowed; expected some of {allowed}")
    os.sched_setaffinity(0, cpus)
    log.info("audio and model threads on CPU %s", ", ".join(map(str, cpus)))


@dataclass
class _Flags:
    stop: bool = False
    reload: bool = False
    toggle_bypass: bool = False


class Daemon:
    """One run of the real-time enhancer, from ``run()`` until a stop signal or the end of a file input."""

    def __init__(self, load_config: Callable[[], RuntimeConfig], fast: bool = False) -> None:
        """Args:
        load_config: reads the configuration (file, --set and command-line options); called at start
            and again on SIGHUP.
        fast: read a file input as fast as possible (file output only).
        """
        self._load_config = load_config
        self._fast = fast
        self._flags = _Flags()
        self._wake = threading.Event()
        self._notifier = SystemdNotifier()
        self._alerts: dict[str, RateLimitedWarning] = {}
        self._last_snapshot: StatsSnapshot | None = None
        self._stats_json: JsonLinesWriter | None = None

    def run(self) -> int:
        """Run until stopped; returns the exit status (0 for a clean stop or a finished file,
        ``EXIT_VIRTUAL_MIC_LOST`` when the virtual microphone stayed lost for ``devices.virtual_mic_give_up_s``).

        Raises:
            ConfigError, DeviceError, CheckpointError: bad configuration, device or weights (before any audio).
        """
        disable_huge_pages()  # before the model's and the buffers' memory is allocated
        cfg = self._load_config()
        if self._fast and not (cfg.audio.input.startswith(FILE_PREFIX) and cfg.audio.output.startswith(FILE_PREFIX)):
            raise ConfigError("--fast needs a file: input and a file: output")
        self._stats_json = self._open_stats_json(cfg)
        source_end = resolve(cfg.audio.input, "input", cfg.audio.sample_rate)
        virtual_mic = VirtualMic() if cfg.audio.output == VIRTUAL_MIC else None
        watch: PresenceWatch | None = None
        engine: Engine | None = None
        previous = self._install_signals()
        try:
            sink_end = (virtual_mic.create(cfg.audio.sample_rate) if virtual_mic is not None
                        else resolve(cfg.audio.output, "output", cfg.audio.sample_rate))
            processor, stft_cfg = self._load_model(cfg)
            source, sink = self._make_ends(cfg, source_end, sink_end)
            raise_priority(cfg.engine.nice)  # before the audio threads start: they inherit it and the affinity
            pin_cpus(cfg.engine.cpus)
            watch = self._watch(source_end, sink_end, virtual_mic)
            engine = Engine(cfg, processor, stft_cfg, source, sink, watch, heartbeat=self._notifier.watchdog)
            gc.freeze()  # the model and buffers live until exit: keep the collector from scanning them mid-hop
            log.info("%s -> %s at %d/%d Hz, target latency %s", cfg.audio.input, cfg.audio.output, source.rate,
                     sink.rate, f"{cfg.latency.target_ms:.0f} ms" if cfg.latency.target_ms else "auto (as low as timing allows)")
            engine.start()
            return self._serve(cfg, engine, virtual_mic is not None)
        finally:
            self._notifier.stopping()
            if engine is not None:
                engine.stop(STOP_TIMEOUT_S)
            if watch is not None:
                watch.stop()
            if virtual_mic is not None:
                virtual_mic.remove()
            self._notifier.close()
            self._restore_signals(previous)
            if self._stats_json is not None:
                self._stats_json.close()

    @staticmethod
    def _open_stats_json(cfg: RuntimeConfig) -> JsonLinesWriter | None:
        """The --stats-json writer, opened now so that a bad path stops the start, not the audio later.

        Raises:
            ConfigError: the file cannot be opened or is not a regular file.
        """
        if not cfg.stats.json_path:
            return None
        try:
            return JsonLinesWriter(cfg.stats.json_path, log)
        except OSError as exc:
            raise ConfigError(exc.strerror) from None

    def _load_model(self, cfg: RuntimeConfig) -> tuple[HopProcessor, StftConfig]:
        from rtenhance.backends import make_stepper, resolve_backend
        from rtenhance.weights import resolve_model

        backend = resolve_backend(cfg.engine.backend)
        if backend in ("onnx", "torch"):  # the native backend runs one C thread and never imports PyTorch
            import torch

            torch.set_num_threads(cfg.engine.threads)
        model, name = resolve_model(cfg.engine.weights)
        log.info("model %s on backend %s (%d thread%s)", name, backend, cfg.engine.threads,
                 "" if cfg.engine.threads == 1 else "s")
        stft_cfg = model.config.stft
        processor = make_hop_processor(make_stepper(model, backend), stft_cfg, cfg.enhance.limiter_knee_dbfs)
        processor.warm_up(WARMUP_FRAMES)
        return processor, stft_cfg

    def _make_ends(self, cfg: RuntimeConfig, source_end: Endpoint, sink_end: Endpoint) -> tuple[Source, Sink]:
        latency_s = cfg.audio.device_latency_ms / 1e3 or None
        connection = self._pulse_connection(cfg, source_end, sink_end)
        source: Source
        if source_end.kind == "file":
            source = FileSource(source_end, realtime=not self._fast)
        elif source_end.kind == "pulse":
            source = (NativePulseCapture(source_end, cfg.audio.block_ms, connection) if connection
                      else PulseCapture(source_end, cfg.audio.block_ms))
        else:
            source = Capture(source_end, round(cfg.audio.block_ms * source_end.sample_rate / 1e3), latency_s)
        sink: Sink
        if sink_end.kind == "file":
            sink = FileSink(sink_end, source.rate)
        elif sink_end.kind == "pulse":
            sink = (NativePulsePlayback(sink_end, cfg.audio.block_ms, connection) if connection
                    else PulsePlayback(sink_end, cfg.audio.block_ms))
        else:
            sink = Playback(sink_end, round(cfg.audio.block_ms * sink_end.sample_rate / 1e3), latency_s)
        return source, sink

    @staticmethod
    def _pulse_connection(cfg: RuntimeConfig, source_end: Endpoint, sink_end: Endpoint) -> PulseConnection | None:
        """The connection both ``pulse`` ends share on a C stream library, or None for libpulse-simple (no
        ``pulse`` end, ``audio.pulse_io: simple``, or no C library builds here). ``auto`` takes libpipewire
        when the server is PipeWire, else libpulse; ``pipewire`` and ``pulse`` ask for one of them."""
        if "pulse" not in (source_end.kind, sink_end.kind) or cfg.audio.pulse_io == "simple":
            return None
        pipewire = cfg.audio.pulse_io == "pipewire" or (cfg.audio.pulse_io == "auto" and on_pipewire())
        for library in (PIPEWIRE_LIBRARY, LIBRARY) if pipewire else (LIBRARY,):
            reason = native_pulse_unavailable(library)
            if reason is None:
                log.info("audio streams through %s", "libpipewire" if library is PIPEWIRE_LIBRARY else "libpulse")
                return PulseConnection(library)
            log.warning("audio streams not through %s: %s", library.name, reason)
        log.warning("PulseAudio streams through libpulse-simple (more CPU)")
        return None

    @staticmethod
    def _watch(source_end: Endpoint, sink_end: Endpoint, virtual_mic: VirtualMic | None) -> PresenceWatch | None:
        """Watch the named pulse devices; with a virtual microphone also its source, and recreate both
        when the engine reconnects and finds them gone (a sound-server restart)."""
        sources = (source_end.pulse_name,) if source_end.pulse_name else ()
        sinks = (sink_end.pulse_name,) if sink_end.pulse_name else ()
        if virtual_mic is not None:
            sources += (VIRTUAL_SOURCE,)
        if not sources and not sinks:
            return None
        return start_watch(sinks, sources, virtual_mic.restore if virtual_mic is not None else None)

    def _install_signals(self) -> dict[int, object]:
        def stop(signum: int, frame: object) -> None:
            self._flags.stop = True
            self._wake.set()

        def reload(signum: int, frame: object) -> None:
            self._flags.reload = True
            self._wake.set()

        def toggle(signum: int, frame: object) -> None:
            self._flags.toggle_bypass = True
            self._wake.set()

        handlers = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGHUP: reload, signal.SIGUSR1: toggle}
        return {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}

    @staticmethod
    def _restore_signals(previous: dict[int, object]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _serve(self, cfg: RuntimeConfig, engine: Engine, virtual_mic: bool) -> int:
        """Main thread: readiness, then stats every interval and signal flags, until stop or end of file;
        returns the exit status."""
        lost = _LostTimer(virtual_mic)
        while not (engine.ready.is_set() or engine.finished.is_set() or self._flags.stop):
            self._wake.wait(READY_POLL_S)
            if lost.expired(engine.mode, cfg.devices.virtual_mic_give_up_s):
                return EXIT_VIRTUAL_MIC_LOST
        if engine.ready.is_set():
            self._notifier.ready(f"running: {cfg.audio.input} -> {cfg.audio.output}")
            log.info("audio running")
        next_stats = time.monotonic() + cfg.stats.interval_s
        while not self._flags.stop and not engine.finished.is_set():
            self._wake.wait(max(0.0, min(next_stats - time.monotonic(), READY_POLL_S * 4)))
            self._wake.clear()
            if self._flags.reload:
                self._flags.reload = False
                cfg = self._reload(cfg, engine)
            if self._flags.toggle_bypass:
                self._flags.toggle_bypass = False
                log.info("bypass %s", "on" if engine.toggle_bypass() else "off")
            if time.monotonic() >= next_stats:
                next_stats += cfg.stats.interval_s
                self._report(cfg, engine.snapshot())
            if lost.expired(engine.mode, cfg.devices.virtual_mic_give_up_s):
                return EXIT_VIRTUAL_MIC_LOST
        if engine.finished.is_set() and not self._flags.stop:
            self._report(cfg, engine.snapshot())
        return 0

    def _reload(self, cfg: RuntimeConfig, engine: Engine) -> RuntimeConfig:
        try:
            new = self._load_config()
        except Exception as exc:  # noqa: BLE001 - any failure keeps the running configuration
            log.error("reload failed, keeping the running configuration: %s", exc)
            return cfg
        ignored = restart_only_changes(cfg, new)
        if ignored:
            log.warning("reload: %s changed but need%s a restart; ignored", ", ".join(ignored),
                        "s" if len(ignored) == 1 else "")
        cfg = reloaded(cfg, new)
        engine.configure(cfg)
        log.info("configuration reloaded: attenuation limit %g dB, bypass %s, target %g ms (0: auto), stats every %g s",
                 cfg.enhance.attenuation_limit_db, "on" if cfg.enhance.bypass else "off", cfg.latency.target_ms,
                 cfg.stats.interval_s)
        return cfg

    def _report(self, cfg: RuntimeConfig, snap: StatsSnapshot) -> None:
        line = snap.line()
        logging.getLogger("rtenhance.stats").info("stats: %s", line)
        self._notifier.status(line)
        if self._stats_json is not None:
            self._stats_json.write({"time": time.time(), **snap.as_json()})
        for kind, message in interval_warnings(self._last_snapshot, snap, cfg.stats.interval_s):
            self._alerts.setdefault(kind, RateLimitedWarning(log, XRUN_WARN_PERIOD_S)).warn(message)
        self._last_snapshot = snap


class _LostTimer:
    """How long the engine has been reconnecting, for the virtual microphone's give-up bound.

    Args:
        active: whether the bound applies (only a virtual microphone: a device that is unplugged is waited
            for, but a sound server that does not come back is better left to the service manager).
    """

    def __init__(self, active: bool) -> None:
        self._active = active
        self._since: float | None = None

    def expired(self, mode: str, limit_s: float) -> bool:
        """Whether ``mode`` has been "reconnecting" for more than ``limit_s``; logs the verdict once."""
        if not self._active or mode != "reconnecting":
            self._since = None
            return False
        now = time.monotonic()
        self._since = self._since if self._since is not None else now
        if now - self._since <= limit_s:
            return False
        log.error("the virtual microphone could not be recreated for %.0f s: exiting with status %d so that "
                  "the service manager restarts rtenhance", limit_s, EXIT_VIRTUAL_MIC_LOST)
        return True
