"""Minimal sounddevice passthrough (the latency baseline (b)): pulse SOURCE -> pulse SINK, no processing.

Usage: python passthrough_helper.py SOURCE SINK RATE. Two PortAudio streams on the ALSA ``pulse`` device
(PULSE_SOURCE/PULSE_SINK set while each opens), PortAudio's "low" latency and variable blocks, the same
stream settings as rtenhance's defaults, and a plain ring between the callbacks. Runs until SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import numpy as np
import sounddevice as sd

from rtenhance.audio.io.ring import SpscRing


def main() -> None:
    source, sink, rate = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ring = SpscRing(rate)
    scratch = np.zeros(16384, dtype=np.float32)

    def capture(indata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        ring.write(indata[:, 0])

    def play(outdata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        n = ring.read_into(scratch[:frames])
        outdata[:n, 0] = scratch[:n]
        outdata[n:] = 0.0

    os.environ["PULSE_SOURCE"] = source
    stream_in = sd.InputStream(device="pulse", samplerate=rate, channels=1, dtype="float32", latency="low",
                               callback=capture)
    os.environ["PULSE_SINK"] = sink
    stream_out = sd.OutputStream(device="pulse", samplerate=rate, channels=1, dtype="float32", latency="low",
                                 callback=play)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with stream_out, stream_in:
        print("passthrough running", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
