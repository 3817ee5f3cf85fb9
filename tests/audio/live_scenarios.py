"""The live scenario matrix of issue 10: the real daemon between sinks A and B under realistic timings.

One scenario runs ``python -m rtenhance run --input pulse:A.monitor --output pulse:B --stats-json PATH`` with
default settings (only the stats interval shortened to 1 s), plays the generated noisy speech into A with a
steady (``paplay --latency-msec=10``) or a bursty producer (``paplay`` with its default buffer), records
B.monitor with 10 ms or 500 ms fragments, and measures after the first WARMUP_S of speech (see live_metrics).
A and B are two independent null sinks, except in the ``delay`` scenario, which records S.monitor of the
remap topology to read the end-to-end delay sample-exactly; ``loopback_delay_ms`` gives the same figure for
a plain ``module-loopback`` as the reference.

Clock mismatch: on PulseAudio, B is declared at 48048 Hz while A runs at 48000 Hz, so B consumes 0.1 %
faster in wall time. PipeWire 0.3 has no equivalent: every null sink's timer runs at the graph rate
(a sink declared at 48048 Hz is resampled into the 48 kHz graph and plays at nominal speed), so the
mismatch scenario runs on PulseAudio only.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.audio.daemon_support import DaemonProcess, daemon_env, read_json_lines, windowed_lags_ms
from tests.audio.live_metrics import StatsSummary, WindowMatch, match_windows, summarise_stats
from tests.audio.live_speech import MODEL_RATE, SpeechInput
from tests.audio.sound_server import (
    INDEPENDENT, MIX_SINK, PIPEWIRE, PULSEAUDIO, RATE, REMAP, SERVER_KINDS, SINK_A, SINK_B, SoundServer,
    stop_recording,
)

WARMUP_S = 5.0
SPEECH_S = 35.0  # WARMUP_S plus 30 s measured
STATS_INTERVAL_S = 1.0
SETTLE_S = 1.0  # between the daemon's readiness, the recorder's start and the producer's start
STEADY_LATENCY_MS = 10
MAX_LAG_S = 5.0  # the producer's start offset in the recording plus the delay, at most
DELAY_WINDOW_S = 2.5
LOOPBACK_S = 10.0
LOG_TAIL_CHARS = 3000


@dataclass(frozen=True)
class Scenario:
    """One cell of the matrix (per server).

    Attributes:
        name: short label.
        producer: ``"steady"`` (paplay --latency-msec=10) or ``"bursty"`` (paplay's default buffer).
        record_ms: fragment size the recorder of B.monitor asks for, ms.
        topology: ``"independent"`` (A and B separate null sinks) or ``"remap"`` (S.monitor, delay measured).
        quantum: PipeWire graph period forced, frames (0: the server's choice).
        b_rate: rate sink B is declared at, Hz (48048: the 0.1 % clock mismatch).
        servers: the servers it applies to.
    """

    name: str
    producer: str
    record_ms: int
    topology: str = INDEPENDENT
    quantum: int = 0
    b_rate: int = RATE
    servers: tuple[str, ...] = SERVER_KINDS


SCENARIOS = (
    Scenario("steady", "steady", 10),
    Scenario("bursty", "bursty", 10),
    Scenario("steady-rec500", "steady", 500),
    Scenario("bursty-rec500", "bursty", 500),
    Scenario("quantum256", "steady", 10, quantum=256, servers=(PIPEWIRE,)),
    Scenario("quantum2048", "bursty", 10, quantum=2048, servers=(PIPEWIRE,)),
    Scenario("mismatch0.1%", "steady", 10, b_rate=RATE + RATE // 1000, servers=(PULSEAUDIO,)),
    Scenario("delay", "steady", 10, topology=REMAP),
)
SCENARIO_BY_NAME = {s.name: s for s in SCENARIOS}


@dataclass(frozen=True)
class ScenarioResult:
    """What one scenario measured.

    Attributes:
        server: ``"pulseaudio"`` or ``"pipewire"``.
        scenario: the scenario.
        stats: the daemon's stats over the measured span.
        windows: the recording against the offline enhancement.
        e2e_ms: median end-to-end delay A -> B, ms (``delay`` scenario only, else None).
        exit_code: the daemon's exit status after SIGTERM.
        load: the 1-minute load average at the end (the machine is shared).
        log: the daemon's whole log.
    """

    server: str
    scenario: Scenario
    stats: StatsSummary
    windows: WindowMatch
    e2e_ms: float | None
    exit_code: int
    load: float
    log: str

    @property
    def log_tail(self) -> str:
        return self.log[-LOG_TAIL_CHARS:]


def run_scenario(server: SoundServer, scenario: Scenario, speech: SpeechInput, folder: Path) -> ScenarioResult:
    """Run one scenario on ``server`` (its topology and quantum restored afterwards); files go to ``folder``."""
    if server.kind not in scenario.servers:
        raise ValueError(f"scenario {scenario.name} does not apply to {server.kind}")
    folder.mkdir(parents=True, exist_ok=True)
    topology = (server.independent_sinks(scenario.b_rate) if scenario.topology == INDEPENDENT
                else contextlib.nullcontext())
    with topology:
        if scenario.quantum:
            server.set_quantum(scenario.quantum)
        try:
            return _run(server, scenario, speech, folder)
        finally:
            if scenario.quantum:
                server.set_quantum(0)


def _run(server: SoundServer, scenario: Scenario, speech: SpeechInput, folder: Path) -> ScenarioResult:
    stats_path = folder / "stats.jsonl"
    daemon = DaemonProcess(
        ["run", "--input", f"pulse:{SINK_A}.monitor", "--output", f"pulse:{SINK_B}", "--stats-json", str(stats_path),
         "--set", f"stats.interval_s={STATS_INTERVAL_S:g}"],
        daemon_env(server.env), folder / "daemon.log",
    )
    remap = scenario.topology == REMAP
    recording = folder / "recording.wav"
    try:
        daemon.wait_ready()
        time.sleep(SETTLE_S)
        recorder = server.record(f"{MIX_SINK if remap else SINK_B}.monitor", recording, channels=2 if remap else 1,
                                 latency_ms=scenario.record_ms)
        time.sleep(SETTLE_S)
        started = time.time()
        latency = STEADY_LATENCY_MS if scenario.producer == "steady" else None
        server.play(speech.wav, SINK_A, latency_ms=latency).wait(timeout=speech.seconds + 30)
        ended = time.time()
        time.sleep(SETTLE_S)
        stop_recording(recorder)
        time.sleep(STATS_INTERVAL_S + 0.2)
    finally:
        code, _ = daemon.terminate()
    stats = summarise_stats(read_json_lines(stats_path), started + WARMUP_S, ended)
    data, rate = sf.read(str(recording), dtype="float32", always_2d=True)
    assert rate == RATE
    from rtenhance.dsp.resample import resample

    output = resample(data[:, -1], RATE, MODEL_RATE)
    windows = match_windows(speech.enhanced, output, MODEL_RATE, WARMUP_S, MAX_LAG_S)
    e2e = _median_delay_ms(data, WARMUP_S + SETTLE_S) if remap else None
    return ScenarioResult(server.kind, scenario, stats, windows, e2e, code, os.getloadavg()[0], daemon.log())


def _median_delay_ms(mix: np.ndarray, skip_s: float) -> float:
    """Median A -> B delay in ms from a recording of S.monitor (A left, B right), after ``skip_s``."""
    skip = int(skip_s * RATE)
    lags = windowed_lags_ms(mix[skip:, 0], mix[skip:, 1], RATE, DELAY_WINDOW_S)
    return statistics.median(lags) if lags else float("nan")


def loopback_delay_ms(server: SoundServer, speech: SpeechInput, folder: Path, seconds: float = LOOPBACK_S) -> float:
    """Median A -> B delay in ms of a plain ``module-loopback`` (1 ms asked) with the steady producer."""
    if server.topology != REMAP:
        raise ValueError("the loopback delay is measured on the remap topology (S.monitor)")
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / "loopback_input.wav"
    sf.write(str(wav), speech.noisy[: int(seconds * MODEL_RATE)], MODEL_RATE)
    module = server.load_module("module-loopback", f"source={SINK_A}.monitor", f"sink={SINK_B}", "latency_msec=1")
    try:
        time.sleep(SETTLE_S)
        recording = folder / "loopback.wav"
        recorder = server.record(f"{MIX_SINK}.monitor", recording, channels=2, latency_ms=STEADY_LATENCY_MS)
        time.sleep(SETTLE_S)
        server.play(wav, SINK_A, latency_ms=STEADY_LATENCY_MS).wait(timeout=seconds + 30)
        time.sleep(0.3)
        stop_recording(recorder)
    finally:
        server.pactl("unload-module", str(module))
    data, _ = sf.read(str(recording), dtype="float32", always_2d=True)
    return _median_delay_ms(data, SETTLE_S)
