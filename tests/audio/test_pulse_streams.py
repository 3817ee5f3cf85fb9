"""PulseAudio capture and playback through libpulse-simple, on the private server's null sinks (capture
also through the C main-loop thread of ``native_pulse``, which must behave the same)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

from rtenhance.audio.io import native_pulse
from rtenhance.audio.io.devices import DeviceError, Endpoint, resolve
from rtenhance.audio.io.pulse_simple import SimpleStream
from rtenhance.audio.io.pulse_streams import PulseCapture, PulsePlayback
from tests.audio.daemon_support import aligned_correlation
from tests.audio.pulse_support import RATE, stop_recording

TONE_HZ = 440.0
RUN_S = 4.0
TIMED_S = 1.5  # the capture rate is timed over the last this many seconds


@pytest.fixture
def pulse_env(pulse_server, monkeypatch):
    for key, value in pulse_server.env.items():
        monkeypatch.setenv(key, value)
    return pulse_server


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)


NATIVE_REASON = native_pulse.unavailable_reason()
CAPTURES = [PulseCapture, pytest.param(native_pulse.NativePulseCapture, marks=pytest.mark.skipif(
    NATIVE_REASON is not None, reason=f"native pulse library unavailable: {NATIVE_REASON}"))]


PLAYBACKS = [PulsePlayback, pytest.param(native_pulse.NativePulsePlayback, marks=pytest.mark.skipif(
    NATIVE_REASON is not None, reason=f"native pulse library unavailable: {NATIVE_REASON}"))]


@pytest.mark.parametrize("capture_class", CAPTURES, ids=["simple", "native"])
def test_capture_delivers_the_played_signal_at_the_device_rate(pulse_env, tmp_path, capture_class):
    sf.write(tmp_path / "tone.wav", _tone(RUN_S + 2.0), RATE)
    capture = capture_class(resolve("pulse:A.monitor", "input", RATE))
    capture.open()
    player = pulse_env.play(tmp_path / "tone.wav")
    try:
        time.sleep(0.5)
        capture.start()
        got = np.zeros(int(RATE * RUN_S), dtype=np.float32)
        count, start = 0, 0.0
        while count < got.shape[0]:
            capture.wait_input(1, 0.0)
            assert capture.fault(1.0) is None
            count += capture.ring.read_into(got[count:])
            if not start and count >= got.shape[0] - TIMED_S * RATE:  # an idle null sink starts with a burst
                start, timed_from = time.monotonic(), count
        rate = (count - timed_from) / (time.monotonic() - start)
    finally:
        capture.close()
        player.terminate()
    assert rate == pytest.approx(RATE, rel=0.1)  # the device's clock, not as fast as possible
    assert 0.0 < capture.device_latency_s() < 0.1
    assert capture.callbacks > 0 and capture.status_flags == 0
    spectrum = np.abs(np.fft.rfft(got[RATE // 2 :]))
    assert np.fft.rfftfreq(got[RATE // 2 :].shape[0], 1 / RATE)[spectrum.argmax()] == pytest.approx(TONE_HZ, abs=1.0)
    assert capture.fault(1.0) == "not open"


@pytest.mark.parametrize("playback_class", PLAYBACKS, ids=["simple", "native"])
def test_playback_plays_the_ring_and_counts_underflows(pulse_env, tmp_path, playback_class):
    tone = _tone(RUN_S)
    playback = playback_class(resolve("pulse:B", "output", RATE))
    recorder = pulse_env.record("B.monitor", tmp_path / "b.wav")
    playback.open()
    try:
        time.sleep(0.3)
        playback.start(prefill=RATE // 50)
        for block in np.split(tone, 30):  # 100 ms at a time, ahead of the device
            while playback.ring.free < block.shape[0]:
                time.sleep(0.005)
            playback.write(block)
            assert playback.fault(1.0) is None
            time.sleep(0.09)
        deadline = time.monotonic() + 5.0
        while playback.ring.available and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        underflows_after_drain = playback.underflows()
    finally:
        playback.close()
        stop_recording(recorder)
    assert underflows_after_drain > 0 and playback.ring.underflows > 0  # ran dry after the tone: silence, counted
    recorded = sf.read(str(tmp_path / "b.wav"), dtype="float32")[0]
    # window by window: the writer sleeps between 100 ms blocks, and a late wake-up on a loaded machine shifts
    # the rest of a pure tone by a gap, which one correlation over the whole run reads as -0.8 (a whole run)
    corr = aligned_correlation(tone, recorded, RATE, max_lag_s=(recorded.shape[0] - tone.shape[0] // 2) / RATE)
    assert corr > 0.9, corr
    assert 0.0 < playback.device_latency_s() < 0.1
    assert 0.0 < playback.device_latency_s() < 0.1


def test_missing_device_and_server_give_device_errors(pulse_env, monkeypatch):
    with pytest.raises(DeviceError, match="pulse record stream on no_such_source"):
        SimpleStream("record", "no_such_source", RATE, 1, 384)
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/native")
    with pytest.raises(DeviceError, match="pulse playback stream"):
        PulsePlayback(Endpoint("pulse", "output", "pulse:B", pulse_name="B", sample_rate=RATE)).open()
