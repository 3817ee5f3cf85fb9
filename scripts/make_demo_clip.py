"""Make the bundled demo clip: speech synthesised with espeak-ng plus generated noise (pink noise,
mains hum and keyboard-like clicks) at 5 dB SNR, 16 kHz mono PCM16.

Usage: python scripts/make_demo_clip.py [OUT]   (default: rtenhance/data/demo_noisy.wav)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from rtenhance.dsp.resample import resample

SAMPLE_RATE = 16000
SNR_DB = 5.0
SEED = 20261128
TEXT = (
    "Hello, this is the rtenhance demo. The fan, the hum and the keyboard in the background "
    "should fade away, while my voice stays clear and natural."
)
HUM_HZ = 50.0
CLICKS_PER_SECOND = 4.0


def synthesise_speech(text: str) -> np.ndarray:
    """espeak-ng speech at SAMPLE_RATE, float32 mono, peak 0.5."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), text], check=True)
        speech, rate = sf.read(wav, dtype="float32")
    speech = resample(speech, rate, SAMPLE_RATE)
    return 0.5 * speech / np.abs(speech).max()


def generate_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink noise + mains hum with harmonics + decaying clicks, n samples."""
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    pink = np.fft.irfft(spectrum, n)
    pink /= pink.std()
    t = np.arange(n) / SAMPLE_RATE
    hum = sum(np.sin(2 * np.pi * HUM_HZ * k * t) / k for k in (1, 2, 3, 5))
    clicks = np.zeros(n)
    decay = np.exp(-np.arange(400) / 60.0)
    for start in rng.integers(0, n - 400, int(CLICKS_PER_SECOND * n / SAMPLE_RATE)):
        clicks[start : start + 400] += rng.uniform(2, 6) * decay * rng.standard_normal(400)
    return (pink + 0.5 * hum / np.abs(hum).max() + clicks).astype(np.float32)


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "rtenhance/data/demo_noisy.wav"
    rng = np.random.default_rng(SEED)
    speech = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.float32), synthesise_speech(TEXT), np.zeros(SAMPLE_RATE // 2, np.float32)])
    noise = generate_noise(speech.shape[0], rng)
    gain = np.sqrt(np.mean(speech**2) / (np.mean(noise**2) * 10 ** (SNR_DB / 10)))
    noisy = speech + gain * noise
    noisy *= 0.9 / np.abs(noisy).max()
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, noisy, SAMPLE_RATE, subtype="PCM_16")
    print(f"wrote {out} ({noisy.shape[0] / SAMPLE_RATE:.1f} s, {SNR_DB:.0f} dB SNR)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
