"""Device specs: files, PulseAudio names with their native rate, clear errors, and `rtenhance devices`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from rtenhance.audio.io.devices import DeviceError, resolve
from tests.audio.daemon_support import daemon_env


def test_file_specs(tmp_path):
    sf.write(str(tmp_path / "x.wav"), np.zeros((441, 2), dtype=np.float32), 44100)
    source = resolve(f"file:{tmp_path / 'x.wav'}", "input")
    assert (source.kind, source.sample_rate, source.channels) == ("file", 44100, 2)
    assert resolve(f"file:{tmp_path / 'out.wav'}", "output").path == tmp_path / "out.wav"
    with pytest.raises(DeviceError, match="cannot read audio file"):
        resolve(f"file:{tmp_path / 'nope.wav'}", "input")
    with pytest.raises(DeviceError, match="does not exist"):
        resolve(f"file:{tmp_path / 'no' / 'out.wav'}", "output")


def test_pulse_specs_use_the_server_device_and_rate(pulse_server, monkeypatch):
    for key, value in pulse_server.env.items():
        monkeypatch.setenv(key, value)
    source = resolve("pulse:A.monitor", "input")
    sink = resolve("pulse:B", "output")
    assert (source.kind, source.pulse_name, source.sample_rate, source.channels) == ("pulse", "A.monitor", 16000, 1)
    assert (sink.kind, sink.pulse_name, sink.sample_rate) == ("pulse", "B", 16000)
    assert resolve("pulse:B", "output", 48000).sample_rate == 48000
    mic, speakers = resolve("mic", "input"), resolve("speakers", "output")
    assert (mic.kind, mic.pulse_name, mic.sample_rate, speakers.kind, speakers.pulse_name) == ("pulse", None, 16000,
                                                                                             "pulse", None)
    with pytest.raises(DeviceError, match="no pulse sink named 'A.monitor'"):
        resolve("pulse:A.monitor", "output")
    with pytest.raises(DeviceError, match="mic is an input device"):
        resolve("mic", "output")
    with pytest.raises(DeviceError, match="no input device matches"):
        resolve("no such microphone", "input")


def test_devices_command_lists_portaudio_and_pulse(pulse_server, tmp_path):
    done = subprocess.run([sys.executable, "-m", "rtenhance", "devices"], env=daemon_env(pulse_server.env),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pulse (ALSA)" in done.stdout
    assert "1ch  48000 Hz  pulse:A.monitor" in done.stdout and "pulse:B" in done.stdout
