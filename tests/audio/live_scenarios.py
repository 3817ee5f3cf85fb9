"""The live scenario matrix of issue 10: the real daemon between sinks A and B under realistic timings.

One scenario runs ``python -m rtenhance run --input pulse:A.monitor --output pulse:B --stats-json PATH`` with
default settings (only the stats interval shortened to 1 s), plays the generated noisy speech into A with a
steady (``paplay --latency-msec=10``) or a bursty producer (``paplay`` with its default buffer), records
B.monitor with 10 ms or 500 ms fragments, and measures after the first WARMUP_S of speech (see live_metrics).
A and B are two independent null sinks, except in the ``delay`` scenario, which records S.monitor of the
remap topology to read the end-to-end delay sample-exactly; ``loopback_delay_ms`` gives the same figure for
a plain ``module-loopback`` as the reference. What reached the daemon's input is recorded too (A.monitor or
C with PROBE_MS fragments, which asks nothing of A's timing; S.monitor's left channel in the remap topology),
and the output is compared with the offline enhancement of *that*: a producer that underruns on a busy
machine leaves gaps in the input (shown as the input's own shift against the file), and the daemon is
judged on what it was given, not on the producer's gaps.

Clock mismatch: sinks declared at another rate do not make one (the server resamples our 16 kHz stream
into the sink's rate, and every null sink's timer runs on the same system clock), so the ``mismatch`` cells
capture from C, a ``module-pipe-source`` that ``clocked_source.py`` feeds 0.1 % fast or slow in wall time, as
a USB microphone's crystal against a sound card. PulseAudio's pipe source posts what arrives when it
arrives; PipeWire's follows its graph clock instead, so these cells run on PulseAudio only.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.audio.daemon_support import DaemonProcess, daemon_env, read_json_lines, windowed_lags_ms
from tests.audio.live_metrics import StatsSummary, WindowMatch, match_windows, summarise_stats
from tests.audio.live_speech import MODEL_RATE, SpeechInput, offline_enhancement
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
CLOCKED_SOURCE = "C"
CLOCKED_HELPER = Path(__file__).with_name("clocked_source.py")
PROBE_MS = 500


@dataclass(frozen=True)
class Scenario:
    """One cell of the matrix (per server).

    Attributes:
        name: short label.
        producer: ``"steady"`` (paplay --latency-msec=10) or ``"bursty"`` (paplay's default buffer).
        record_ms: fragment size the recorder of B.monitor asks for, ms.
        topology: ``"independent"`` (A and B separate null sinks) or ``"remap"`` (S.monitor, delay measured).
        quantum: PipeWire graph period forced, frames (0: the server's choice).
        capture_ppm: how fast the capture clock runs against playback's, parts per million (0: the input is
            A.monitor; else the clocked pipe source C, with the producer writing into it).
        servers: the servers it applies to.
    """

    name: str
    producer: str
    record_ms: int
    topology: str = INDEPENDENT
    quantum: int = 0
    capture_ppm: int = 0
    servers: tuple[str, ...] = SERVER_KINDS


SCENARIOS = (
    Scenario("steady", "steady", 10),
    Scenario("bursty", "bursty", 10),
    Scenario("steady-rec500", "steady", 500),
    Scenario("bursty-rec500", "bursty", 500),
    Scenario("quantum256", "steady", 10, quantum=256, servers=(PIPEWIRE,)),
    Scenario("quantum2048", "bursty", 10, quantum=2048, servers=(PIPEWIRE,)),
    Scenario("mismatch+0.1%", "steady", 10, capture_ppm=1000, servers=(PULSEAUDIO,)),
    Scenario("mismatch-0.1%", "steady", 10, capture_ppm=-1000, servers=(PULSEAUDIO,)),
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
        input_windows: what reached A against the played file.
        e2e_ms: median end-to-end delay A -> B, ms (``delay`` scenario only, else None).
        exit_code: the daemon's exit status after SIGTERM.
        load: the 1-minute load average at the end (the machine is shared).
        log: the daemon's whole log.
    """

    server: str
    scenario: Scenario
    stats: StatsSummary
    windows: WindowMatch
    input_windows: WindowMatch
    e2e_ms: float | None
    exit_code: int
    load: float
    log: str

    @property
    def delay_spread_ms(self) -> float:
        """Largest minus smallest delay the daemon added over the confident windows, ms (inf: none)."""
        return self.windows.delay_spread_ms

    @property
    def input_shift_ms(self) -> float:
        """How far the input's own timeline moved (the producer's gaps), ms (inf: no window matched)."""
        return self.input_windows.delay_spread_ms

    @property
    def log_tail(self) -> str:
        return self.log[-LOG_TAIL_CHARS:]


def run_scenario(server: SoundServer, scenario: Scenario, speech: SpeechInput, folder: Path) -> ScenarioResult:
    """Run one scenario on ``server`` (its topology and quantum restored afterwards); files go to ``folder``."""
    if server.kind not in scenario.servers:
        raise ValueError(f"scenario {scenario.name} does not apply to {server.kind}")
    folder.mkdir(parents=True, exist_ok=True)
    topology = server.independent_sinks() if scenario.topology == INDEPENDENT else contextlib.nullcontext()
    producer = _ClockedProducer(server, speech, folder, scenario.capture_ppm) if scenario.capture_ppm \
        else _PaplayProducer(server, speech, scenario.producer)
    with topology, producer:
        if scenario.quantum:
            server.set_quantum(scenario.quantum)
        try:
            return _run(server, scenario, speech, producer, folder)
        finally:
            if scenario.quantum:
                server.set_quantum(0)


class _PaplayProducer(contextlib.AbstractContextManager):
    """Plays the noisy speech into A with paplay (steady: 10 ms buffer; bursty: its default); the daemon
    captures A.monitor."""

    def __init__(self, server: SoundServer, speech: SpeechInput, kind: str) -> None:
        self.server, self.speech = server, speech
        self.latency_ms = STEADY_LATENCY_MS if kind == "steady" else None
        self.source = f"{SINK_A}.monitor"

    def __exit__(self, *exc: object) -> None:
        return None

    def play(self) -> None:
        self.server.play(self.speech.wav, SINK_A, latency_ms=self.latency_ms).wait(timeout=self.speech.seconds + 30)


class _ClockedProducer(contextlib.AbstractContextManager):
    """A pipe source C fed by ``clocked_source.py`` at ``ppm`` off nominal: silence until ``play``, then
    the noisy speech; the daemon captures C."""

    def __init__(self, server: SoundServer, speech: SpeechInput, folder: Path, ppm: int) -> None:
        if server.kind != PULSEAUDIO:
            raise ValueError("the clocked pipe source needs PulseAudio (PipeWire's follows its graph clock)")
        self.server, self.speech, self.ppm = server, speech, ppm
        self.source = CLOCKED_SOURCE
        folder.mkdir(parents=True, exist_ok=True)
        self.fifo = folder / "clocked.fifo"
        self.module = server.load_module("module-pipe-source", f"source_name={CLOCKED_SOURCE}", f"file={self.fifo}",
                                         "format=float32le", f"rate={MODEL_RATE}", "channels=1")
        self.writer = subprocess.Popen([sys.executable, str(CLOCKED_HELPER), str(self.fifo), str(MODEL_RATE),
                                        str(ppm), str(speech.wav)])

    def __exit__(self, *exc: object) -> None:
        self.writer.terminate()
        self.writer.wait(timeout=5)
        self.server.pactl("unload-module", str(self.module))

    def play(self) -> None:
        self.writer.send_signal(signal.SIGUSR1)
        time.sleep(self.speech.seconds / (1.0 + self.ppm * 1e-6) + 0.1)


def _run(server: SoundServer, scenario: Scenario, speech: SpeechInput, producer: _PaplayProducer | _ClockedProducer,
         folder: Path) -> ScenarioResult:
    stats_path = folder / "stats.jsonl"
    daemon = DaemonProcess(
        ["run", "--input", f"pulse:{producer.source}", "--output", f"pulse:{SINK_B}", "--stats-json", str(stats_path),
         "--set", f"stats.interval_s={STATS_INTERVAL_S:g}"],
        daemon_env(server.env), folder / "daemon.log",
    )
    remap = scenario.topology == REMAP
    recording, probe_path = folder / "recording.wav", folder / "input.wav"
    probe = None
    try:
        daemon.wait_ready()
        time.sleep(SETTLE_S)
        recorder = server.record(f"{MIX_SINK if remap else SINK_B}.monitor", recording, channels=2 if remap else 1,
                                 latency_ms=scenario.record_ms)
        if not remap:
            probe = server.record(producer.source, probe_path, latency_ms=PROBE_MS)
        time.sleep(SETTLE_S)
        started = time.time()
        producer.play()
        ended = time.time()
        time.sleep(SETTLE_S)
        stop_recording(recorder)
        if probe is not None:
            stop_recording(probe)
        time.sleep(STATS_INTERVAL_S + 0.2)
    finally:
        code, _ = daemon.terminate()
    stats = summarise_stats(read_json_lines(stats_path), started + WARMUP_S, ended)
    data, rate = sf.read(str(recording), dtype="float32", always_2d=True)
    assert rate == RATE
    from rtenhance.dsp.resample import resample

    captured = data[:, 0] if remap else sf.read(str(probe_path), dtype="float32", always_2d=True)[0][:, 0]
    output, captured = resample(data[:, -1], RATE, MODEL_RATE), resample(captured, RATE, MODEL_RATE)
    # the input is compared with the file sample for sample (every captured sample is one of the file's,
    # whatever the capture clock); the output with the enhancement of what was captured, which the probe
    # started recording SETTLE_S before the producer, on playback's time line
    reference = _as_played(offline_enhancement(captured), scenario.capture_ppm)
    windows = match_windows(reference, output, MODEL_RATE, WARMUP_S + SETTLE_S, MAX_LAG_S)
    input_windows = match_windows(speech.noisy, captured, MODEL_RATE, WARMUP_S, MAX_LAG_S)
    e2e = _median_delay_ms(data, WARMUP_S + SETTLE_S) if remap else None
    return ScenarioResult(server.kind, scenario, stats, windows, input_windows, e2e, code, os.getloadavg()[0],
                          daemon.log())


def _as_played(enhanced: np.ndarray, capture_ppm: int) -> np.ndarray:
    """The offline enhancement on the playback clock's time line: a capture clock ``capture_ppm`` fast
    delivers the input that much faster in wall time, and the drift resampling fits it to playback's clock
    (``capture_ppm`` fewer output samples per input sample)."""
    if not capture_ppm:
        return enhanced
    from scipy.signal import resample_poly

    up, down = 10**6, 10**6 + capture_ppm
    common = math.gcd(up, down)
    return resample_poly(enhanced, up // common, down // common).astype(np.float32)


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
