"""A capture device on its own clock: feeds a ``module-pipe-source`` FIFO at a chosen rate in wall time.

Usage: python clocked_source.py FIFO RATE PPM WAV. Writes mono float32 frames to FIFO at RATE x (1 + PPM
x 1e-6) frames per second of CLOCK_MONOTONIC, in 10 ms chunks: silence, then (on SIGUSR1) the WAV
(already at RATE), then silence again, until SIGTERM. PulseAudio's pipe source posts what arrives when it
arrives, so this is a microphone whose crystal runs PPM fast, as a USB microphone's does against a sound card.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
import soundfile as sf

CHUNK_S = 0.01


def main() -> None:
    fifo, rate, ppm, wav = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    speech, wav_rate = sf.read(wav, dtype="float32", always_2d=True)
    if wav_rate != rate:
        raise SystemExit(f"{wav}: {wav_rate} Hz, expected {rate} Hz")
    speech = speech[:, 0].copy()
    chunk = round(rate * CHUNK_S)
    period_s = chunk / (rate * (1.0 + ppm * 1e-6))
    silence = np.zeros(chunk, dtype=np.float32)
    position = [-1]  # -1: silence before the speech; then the next frame of it to send

    def start_speech(signum: int, frame: object) -> None:
        position[0] = 0

    signal.signal(signal.SIGUSR1, start_speech)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    out = os.open(fifo, os.O_WRONLY)
    start = time.monotonic()
    sent = 0
    while True:
        at = position[0]
        if 0 <= at < speech.shape[0]:
            block = np.zeros(chunk, dtype=np.float32)
            part = speech[at : at + chunk]
            block[: part.shape[0]] = part
            position[0] = at + chunk
        else:
            block = silence
        os.write(out, block.tobytes())
        sent += 1
        delay = start + sent * period_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)


if __name__ == "__main__":
    main()
