"""What a user tunes at run time: the daemon's configuration, its file lookup and its reloadable part.

The model's shape lives in ``config.ModelConfig`` (fixed by a checkpoint); everything here can change
between runs, and the sections named in ``RELOADABLE_SECTIONS`` also while running (SIGHUP). The
documented default file is ``config/rtenhance.yaml`` (shipped as ``rtenhance/data/rtenhance.yaml``); it
holds exactly the built-in defaults below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rtenhance.backends import BACKENDS
from rtenhance.config import ConfigError, apply_overrides, from_dict, require, to_dict

ETC_CONFIG = Path("/etc/rtenhance/config.yaml")
DEFAULT_CONFIG_FILE = Path(__file__).resolve().parent / "data" / "rtenhance.yaml"
RELOADABLE_SECTIONS = ("enhance", "latency", "debug")
RELOADABLE_KEYS = ("stats.interval_s",)
FULL_STRENGTH_DB = 100.0  # an attenuation limit this high leaves 1e-5 of the noisy signal: no limit
PULSE_IO = ("auto", "pipewire", "pulse", "simple")  # audio.pulse_io: which library moves pulse: streams


@dataclass(frozen=True)
class AudioConfig:
    """Devices and stream parameters (need a restart to change).

    Attributes:
        input: capture spec: mic, an index, a name substring, pulse:NAME or file:PATH.
        output: playback spec: speakers, an index, a name substring, pulse:NAME, file:PATH or virtual-mic.
        sample_rate: stream rate in Hz; 0 uses the device's native rate for PortAudio devices and the
            model's 16 kHz for PulseAudio streams (the sound server converts to the device's rate).
        block_ms: PortAudio block in ms, 0 lets PortAudio choose per callback (lowest latency); for pulse:
            streams the fragment each I/O thread moves per wake-up, 0 for 5 ms through libpulse and 8 ms
            through libpipewire (libpulse-simple: 8 ms).
        device_latency_ms: PortAudio's suggested device latency in ms; 0 means its "low" setting (PulseAudio
            streams keep one to three fragments queued in the server instead).
        pulse_io: how ``pulse:`` streams (and mic/speakers on a sound server) move audio: "auto" through
            libpipewire on a PipeWire server and libpulse on PulseAudio, each on one C thread (``native_pulse``;
            built into the wheel, or on first use with a C compiler), else through libpulse-simple with a
            Python thread per stream; "pipewire" and "pulse" ask for one C library, "simple" for the last.
    """

    input: str = "mic"
    output: str = "speakers"
    sample_rate: int = 0
    block_ms: float = 0.0
    device_latency_ms: float = 0.0
    pulse_io: str = "auto"

    def __post_init__(self) -> None:
        require(self.input != "", "audio.input", self.input, "a device spec such as mic or pulse:NAME")
        require(self.output != "", "audio.output", self.output, "a device spec such as speakers or virtual-mic")
        require(self.sample_rate == 0 or 8000 <= self.sample_rate <= 192000, "audio.sample_rate",
               self.sample_rate, "0 (native) or 8000..192000 Hz")
        require(0.0 <= self.block_ms <= 100.0, "audio.block_ms", self.block_ms, "0..100 ms")
        require(0.0 <= self.device_latency_ms <= 1000.0, "audio.device_latency_ms", self.device_latency_ms,
               "0..1000 ms")
        require(self.pulse_io in PULSE_IO, "audio.pulse_io", self.pulse_io, " or ".join(PULSE_IO))


@dataclass(frozen=True)
class EngineConfig:
    """Inference settings (need a restart to change).

    Attributes:
        backend: frame-stepper backend name, or "auto" for the fastest one available.
        threads: CPU threads for inference.
        weights: checkpoint path; null uses the bundled weights (``--weights`` overrides it).
        nice: scheduling priority to ask for (negative = ahead of other programs); kept at the current
            one when the system does not allow it (needs CAP_SYS_NICE or a raised RLIMIT_NICE).
        cpus: CPU indices the audio and model threads may run on; empty for any. One core keeps the
            per-hop code and data in that core's caches (about a quarter less CPU on the development VM).
    """

    backend: str = "auto"
    threads: int = 1
    weights: str | None = None
    nice: int = -10
    cpus: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        require(self.backend in BACKENDS, "engine.backend", self.backend, f"one of {', '.join(BACKENDS)}")
        require(1 <= self.threads <= 64, "engine.threads", self.threads, "1..64")
        require(-20 <= self.nice <= 19, "engine.nice", self.nice, "-20..19")
        require(all(cpu >= 0 for cpu in self.cpus), "engine.cpus", list(self.cpus), "CPU indices (0, 1, ...)")


@dataclass(frozen=True)
class EnhanceConfig:
    """How much enhancement reaches the output (reloadable).

    Attributes:
        attenuation_limit_db: the most the noise is attenuated, in dB: 0 passes the input unchanged,
            100 (the default) is full strength.
        bypass: pass the input through unprocessed (SIGUSR1 toggles it).
        limiter_knee_dbfs: samples below this level pass unchanged; louder ones are compressed softly
            so that the output never exceeds 0 dBFS.
    """

    attenuation_limit_db: float = FULL_STRENGTH_DB
    bypass: bool = False
    limiter_knee_dbfs: float = -3.0

    def __post_init__(self) -> None:
        require(0.0 <= self.attenuation_limit_db <= FULL_STRENGTH_DB, "enhance.attenuation_limit_db",
               self.attenuation_limit_db, f"0..{FULL_STRENGTH_DB:g} dB (0 = bypass)")
        require(-24.0 <= self.limiter_knee_dbfs <= -0.5, "enhance.limiter_knee_dbfs", self.limiter_knee_dbfs,
               "-24..-0.5 dBFS")


@dataclass(frozen=True)
class LatencyConfig:
    """The latency budget (reloadable).

    Attributes:
        target_ms: end-to-end delay to hold from capture to playback in ms, or 0 (the default) for the
            smallest delay the observed timing allows; the engine holds more when the jitter it
            observes needs more, and says so in its stats (``jitter_ms``).
        headroom_ms: how far above empty the output ring's lowest point is held, in ms: the margin
            left for timing worse than any seen in the last 10 s.
        recover_s: seconds of passthrough after an overload before enhancement is tried again
            (doubled while overloads repeat, up to 8 x).
    """

    target_ms: float = 0.0
    headroom_ms: float = 4.0
    recover_s: float = 1.0

    def __post_init__(self) -> None:
        require(self.target_ms == 0.0 or 10.0 <= self.target_ms <= 2000.0, "latency.target_ms", self.target_ms,
               "0 (as low as the timing allows) or 10..2000 ms")
        require(1.0 <= self.headroom_ms <= 200.0, "latency.headroom_ms", self.headroom_ms, "1..200 ms")
        require(0.05 <= self.recover_s <= 60.0, "latency.recover_s", self.recover_s, "0.05..60 s")


@dataclass(frozen=True)
class StatsConfig:
    """Statistics reporting.

    Attributes:
        interval_s: seconds between stats lines (reloadable).
        json_path: also append one JSON object per interval to this file (``--stats-json``).
    """

    interval_s: float = 10.0
    json_path: str | None = None

    def __post_init__(self) -> None:
        require(0.1 <= self.interval_s <= 3600.0, "stats.interval_s", self.interval_s, "0.1..3600 s")


@dataclass(frozen=True)
class DevicesConfig:
    """Device-fault handling (needs a restart to change).

    Attributes:
        retry_initial_s: first wait before reopening a lost device, doubled per failed try.
        retry_max_s: longest wait between tries.
        stall_s: a stream that delivers no callback for this long counts as lost.
        virtual_mic_give_up_s: a virtual microphone that cannot be recreated for this long (the sound
            server did not come back) ends the daemon with a non-zero status, for systemd to restart it.
    """

    retry_initial_s: float = 0.25
    retry_max_s: float = 2.0
    stall_s: float = 1.0
    virtual_mic_give_up_s: float = 60.0

    def __post_init__(self) -> None:
        require(0.01 <= self.retry_initial_s <= 60.0, "devices.retry_initial_s", self.retry_initial_s, "0.01..60 s")
        require(self.retry_initial_s <= self.retry_max_s <= 300.0, "devices.retry_max_s", self.retry_max_s,
               "retry_initial_s..300 s")
        require(0.1 <= self.stall_s <= 60.0, "devices.stall_s", self.stall_s, "0.1..60 s")
        require(1.0 <= self.virtual_mic_give_up_s <= 3600.0, "devices.virtual_mic_give_up_s",
               self.virtual_mic_give_up_s, "1..3600 s")


@dataclass(frozen=True)
class DebugConfig:
    """Test-only settings (reloadable).

    Attributes:
        slow_hop_ms: every hop that runs the model takes at least this long (0 = off), to simulate an
            overloaded CPU whatever the backend's real speed.
    """

    slow_hop_ms: float = 0.0

    def __post_init__(self) -> None:
        require(0.0 <= self.slow_hop_ms <= 1000.0, "debug.slow_hop_ms", self.slow_hop_ms,
               "0..1000 ms")


@dataclass(frozen=True)
class RuntimeConfig:
    """The whole daemon configuration, one frozen dataclass per section."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    enhance: EnhanceConfig = field(default_factory=EnhanceConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)


def config_candidates(explicit: str | None) -> list[Path]:
    """Files looked at, in order: --config, $XDG_CONFIG_HOME (or ~/.config)/rtenhance, /etc/rtenhance."""
    if explicit is not None:
        return [Path(explicit)]
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path(xdg) / "rtenhance" / "config.yaml", ETC_CONFIG]


def find_config(explicit: str | None) -> Path | None:
    """The configuration file to use, or None for the built-in defaults.

    Raises:
        ConfigError: ``explicit`` names a file that does not exist.
    """
    candidates = config_candidates(explicit)
    if explicit is not None and not candidates[0].is_file():
        raise ConfigError(f"--config {explicit}: no such file")
    return next((path for path in candidates if path.is_file()), None)


def read_config_file(path: Path) -> dict[str, Any]:
    """Plain data of one YAML file (an empty file is an empty mapping), read within the bounds of
    ``rtenhance.config_yaml`` (size, aliases, nesting; duplicate keys refused).

    Raises:
        ConfigError: unreadable, oversized or non-UTF-8 file, invalid YAML or a top level that is not a
            mapping; the message names the file.
    """
    import yaml

    from rtenhance.config_yaml import MAX_DOCUMENT_CHARS, load_yaml

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_DOCUMENT_CHARS + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_DOCUMENT_CHARS:
        raise ConfigError(f"{path}: too large for a configuration file (more than {MAX_DOCUMENT_CHARS} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                          "save the file as UTF-8") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} invalid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def load_runtime_config(path: str | None = None, overrides: list[str] | None = None) -> tuple[RuntimeConfig, Path | None]:
    """Load the configuration: the first file found (see ``config_candidates``), then ``--set`` overrides.

    Args:
        path: the --config argument, or None to search the standard places.
        overrides: ``section.key=value`` strings (values parsed as YAML scalars).

    Returns:
        (the validated configuration, the file it came from or None for built-in defaults).

    Raises:
        ConfigError: missing --config file, invalid YAML, unknown key or bad value (the message names them).
    """
    source = find_config(path)
    data = read_config_file(source) if source is not None else {}
    data = apply_overrides(data, list(overrides or []))
    return from_dict(RuntimeConfig, data), source


def restart_only_changes(old: RuntimeConfig, new: RuntimeConfig) -> list[str]:
    """Dotted keys whose change needs a restart (everything outside the reloadable part)."""
    flat_old, flat_new = _flatten(to_dict(old)), _flatten(to_dict(new))
    reloadable = tuple(f"{s}." for s in RELOADABLE_SECTIONS)
    return sorted(
        key for key in flat_new
        if flat_old.get(key) != flat_new[key] and not key.startswith(reloadable) and key not in RELOADABLE_KEYS
    )


def reloaded(old: RuntimeConfig, new: RuntimeConfig) -> RuntimeConfig:
    """``old`` with the reloadable sections and keys taken from ``new``."""
    sections = {name: getattr(new, name) for name in RELOADABLE_SECTIONS}
    stats = replace(old.stats, interval_s=new.stats.interval_s)
    return replace(old, stats=stats, **sections)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
