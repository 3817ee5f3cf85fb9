"""Engine and its HopProcessor: per-hop settings reach the processor, a reloaded limiter knee applies."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from rtenhance.audio.realtime.engine import Engine
from rtenhance.audio.realtime.gate import dry_gain
from rtenhance.config import StftConfig
from rtenhance.runtime_config import RuntimeConfig

RATE = 16000
DEVICE_LATENCY_S = 0.02  # what the real-time test sink reports


class RecordingProcessor:
    """A ``HopProcessor`` (``rtenhance.audio.realtime.hop``) that passes hops through and records what the engine asked of it."""

    def __init__(self, cfg: StftConfig) -> None:
        self.latency_samples = cfg.n_fft - cfg.hop_samples
        self.missed = False
        self.model_s = math.nan
        self.state_resets = 0
        self.calls: list[tuple[bool, float, float, float]] = []
        self.knees: list[float] = []

    def process(self, hop: np.ndarray, run_model: bool, dry: float, deadline_s: float, slow_s: float) -> np.ndarray:
        self.calls.append((run_model, dry, deadline_s, slow_s))
        return hop

    def set_limiter_knee(self, knee_dbfs: float) -> None:
        self.knees.append(knee_dbfs)

    def warm_up(self, frames: int) -> None:
        pass

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemoryEnd:
    """A file-like (not real-time) source or sink end at the model rate, kept in memory."""

    rate = RATE
    channels = 1
    realtime = False

    def __init__(self) -> None:
        self.written: list[np.ndarray] = []

    def write(self, samples: np.ndarray) -> None:
        self.written.append(samples.copy())

    def device_latency_s(self) -> float:
        return 0.0


@pytest.fixture
def setup() -> tuple[Engine, RecordingProcessor, MemoryEnd]:
    stft = StftConfig()
    processor = RecordingProcessor(stft)
    sink = MemoryEnd()
    engine = Engine(RuntimeConfig(), processor, stft, MemoryEnd(), sink)  # type: ignore[arg-type]
    return engine, processor, sink


def test_hop_settings_and_knee_reload_reach_the_processor(setup):
    engine, processor, sink = setup
    hop = np.linspace(-0.5, 0.5, 256, dtype=np.float32)
    cfg = engine._cfg
    engine._hop(hop)
    assert processor.calls[-1] == (True, dry_gain(cfg.enhance.attenuation_limit_db), math.inf, 0.0)
    assert processor.knees == []  # the processor was made with the configured knee
    engine.configure(replace(cfg, enhance=replace(cfg.enhance, limiter_knee_dbfs=-12.0, attenuation_limit_db=6.0),
                             debug=replace(cfg.debug, slow_hop_ms=3.0)))
    engine._hop(hop)
    assert processor.knees == [-12.0]
    assert processor.calls[-1] == (True, dry_gain(6.0), math.inf, 0.003)
    engine.toggle_bypass()
    engine._hop(hop)
    assert processor.calls[-1][1] == 1.0 and processor.knees == [-12.0] and engine.mode == "bypass"


class QueueSink:
    """A real-time sink end kept in memory: a queue the test drains, with the two kinds of underflow counter."""

    rate = RATE
    channels = 1
    realtime = True
    gap_samples = 0  # no server cycle runs without it
    cushion_s = 0.0  # a dry ring is heard at once

    def __init__(self) -> None:
        self.queued = 0
        self.dry = 0  # the ring ran dry
        self.server = 0  # the server ran dry while the ring held audio

    def write(self, samples: np.ndarray) -> None:
        self.queued += samples.shape[0]

    def depth_samples(self) -> int:
        return self.queued

    def underflows(self) -> int:
        return self.dry + self.server

    def ring_underflows(self) -> int:
        return self.dry

    def device_latency_s(self) -> float:
        return DEVICE_LATENCY_S


def test_underflows_by_cause_and_the_first_hop_primes_the_ring():
    stft = StftConfig()
    sink = QueueSink()
    engine = Engine(RuntimeConfig(), RecordingProcessor(stft), stft, MemoryEnd(), sink)  # type: ignore[arg-type]
    hop = np.zeros(256, dtype=np.float32)
    sink.dry = 40  # start-up: the ring ran dry before the first hop (not counted)
    engine._play(hop)  # returns the hop for the caller to queue
    primed = round(engine._playout.headroom_s * RATE)
    assert sink.queued == primed  # topped up with silence first
    sink.server += 2  # the server ran dry with audio queued: counted, but a deeper ring would not help
    engine._session_hops += 1
    engine._play(hop)
    assert engine._underflows.totals(sink.underflows(), sink.ring_underflows()) == (2, 2) and engine._playout.margin_s == 0.0
    sink.dry += 1  # the ring itself ran dry in the first second: still filling, no margin
    engine._play(hop)
    assert engine._underflows.totals(sink.underflows(), sink.ring_underflows()) == (3, 2) and engine._playout.margin_s == 0.0
    engine._session_hops = 1000
    sink.dry += 1  # later: the jitter was deeper than foreseen
    engine._play(hop)
    assert engine._underflows.totals(sink.underflows(), sink.ring_underflows()) == (4, 2) and engine._playout.margin_s > 0.0


def test_the_first_hop_primes_the_ring_to_a_latency_target():
    stft = StftConfig()
    sink = QueueSink()
    cfg = RuntimeConfig()
    cfg = replace(cfg, latency=replace(cfg.latency, target_ms=120.0))
    engine = Engine(cfg, RecordingProcessor(stft), stft, MemoryEnd(), sink)  # type: ignore[arg-type]
    engine._prepare_session()
    engine._play(np.zeros(256, dtype=np.float32))
    # the whole target at once (120 ms less the device, the STFT window, the filters and half a hop), not 2 ms
    # a second
    floor_s = 0.120 - DEVICE_LATENCY_S - engine._algorithmic_s - engine.hop_s / 2
    assert engine._playout.floor_s == pytest.approx(floor_s)
    assert sink.queued == round(floor_s * RATE) and sink.queued > round(engine._playout.headroom_s * RATE)
