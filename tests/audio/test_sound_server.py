"""The private test servers themselves: both topologies carry audio where they should, PipeWire's quantum sets."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

from tests.audio.pulse_support import read_mix
from tests.audio.sound_server import MIX_SINK, RATE, SINK_A, SINK_B, stop_recording

AUDIBLE_RMS = 0.01
SILENT_RMS = 1e-4
TONE_S = 1.0


def tone(path, seconds: float = TONE_S):
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32), RATE)
    return path


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def test_remap_topology_puts_a_left_and_b_right_of_s(sound_server, tmp_path):
    recorder = sound_server.record(f"{MIX_SINK}.monitor", tmp_path / "mix.wav", channels=2)
    time.sleep(0.5)
    sound_server.play(tone(tmp_path / "tone.wav"), SINK_A).wait(timeout=10)
    time.sleep(0.3)
    stop_recording(recorder)
    a, b, rate = read_mix(tmp_path / "mix.wav")
    assert rate == RATE
    assert rms(a) >= AUDIBLE_RMS / 2 and rms(b) <= SILENT_RMS, (rms(a), rms(b), sound_server.log_tail())


def test_independent_sinks_carry_their_own_audio_and_restore_the_remap(sound_server, tmp_path):
    with sound_server.independent_sinks():
        sinks = sound_server.pactl("list", "short", "sinks")
        assert MIX_SINK not in [line.split("\t")[1] for line in sinks.splitlines()], sinks
        assert SINK_B in [line.split("\t")[1] for line in sinks.splitlines()], sinks
        recorder = sound_server.record(f"{SINK_B}.monitor", tmp_path / "b.wav")
        time.sleep(0.5)
        sound_server.play(tone(tmp_path / "tone.wav"), SINK_B, latency_ms=10).wait(timeout=10)
        time.sleep(0.3)
        stop_recording(recorder)
    recorded, _ = sf.read(str(tmp_path / "b.wav"), dtype="float32")
    assert rms(recorded) >= AUDIBLE_RMS / 2, sound_server.log_tail()
    assert f"{MIX_SINK}.monitor" in sound_server.sources()


@pytest.mark.parametrize("frames", [256, 2048])
def test_pipewire_quantum_is_forced(pipewire_server, frames):
    try:
        pipewire_server.set_quantum(frames)
        settings = subprocess.run(["pw-metadata", "-n", "settings"], env=pipewire_server.env, capture_output=True,
                                  text=True, timeout=10).stdout
    finally:
        pipewire_server.set_quantum(0)
    assert f"key:'clock.force-quantum' value:'{frames}'" in settings, settings
