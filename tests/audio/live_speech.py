"""Test input for the live scenarios: generated noisy speech (espeak-ng plus noise) and its offline enhancement.

Generated, not read from ../shared, so that the scenarios run on a fresh clone. The speech is a varied text
spoken by espeak-ng at 16 kHz, the noise pink noise at ``SNR_DB`` plus a little mains hum; the level peaks
at ``PEAK``. The reference the live output is compared with is the bundled model's causal offline
enhancement of the same samples after ``PREROLL_S`` of digital silence (the daemon hears silence before the
producer starts, which sets the model's recurrent state; the offline run hears the same).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

MODEL_RATE = 16000
SNR_DB = 10.0
PEAK = 0.3
HUM_HZ = 50.0
HUM_LEVEL = 0.01  # relative to the speech peak
PREROLL_S = 2.0
SEED = 0
WORDS_PER_S = 2.5  # espeak-ng's default pace, a little under
TEXT = (
    "Every morning the ferry leaves the harbour at seven, and the gulls follow it out past the lighthouse. "
    "Please check the pressure of the front tyres before the long drive north. "
    "Numbers such as forty two, nine hundred and one, and seventeen are read slowly. "
    "She said the meeting had moved to Thursday, but nobody had told the caterers. "
    "A quiet voice carries further than you think in an empty concert hall. "
    "The recipe asks for two cups of flour, a pinch of salt and a spoon of honey. "
    "Would you mind closing the window? The wind keeps blowing the papers off the desk. "
)


@dataclass(frozen=True)
class SpeechInput:
    """One scenario input.

    Attributes:
        noisy: (N,) float32 noisy speech at 16 kHz, what the producer plays.
        wav: the same as a 16 kHz WAV file.
        enhanced: (N,) float32, the bundled model's offline causal enhancement of ``noisy``, at 16 kHz.
    """

    noisy: np.ndarray
    wav: Path
    enhanced: np.ndarray

    @property
    def seconds(self) -> float:
        return self.noisy.shape[0] / MODEL_RATE


def make_speech_input(seconds: float, folder: Path) -> SpeechInput:
    """Generate ``seconds`` of noisy speech in ``folder`` and enhance it offline with the bundled weights.

    Raises:
        RuntimeError: espeak-ng is missing or the package bundles no weights.
    """
    noisy = noisy_speech(seconds, folder)
    wav = folder / "noisy_speech.wav"
    sf.write(str(wav), noisy, MODEL_RATE)
    return SpeechInput(noisy, wav, offline_enhancement(noisy))


def noisy_speech(seconds: float, folder: Path) -> np.ndarray:
    """(N,) float32 espeak-ng speech plus pink noise (``SNR_DB``) and hum at 16 kHz, ``seconds`` long."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("needs espeak-ng (Debian package espeak-ng) to make the test speech")
    repeats = int(np.ceil(seconds * WORDS_PER_S / len(TEXT.split()))) + 1
    spoken = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(spoken), TEXT * repeats], check=True, capture_output=True, timeout=120)
    speech, rate = sf.read(str(spoken), dtype="float32")
    from rtenhance.dsp.resample import resample

    speech = resample(speech, rate, MODEL_RATE)
    total = int(seconds * MODEL_RATE)
    if speech.shape[0] < total:
        raise RuntimeError(f"espeak-ng spoke {speech.shape[0] / MODEL_RATE:.1f} s, under the {seconds} s needed")
    speech = speech[:total] / max(1e-6, float(np.abs(speech[:total]).max()))
    noise = pink_noise(total, np.random.default_rng(SEED))
    noise *= np.sqrt(np.mean(speech**2) / np.mean(noise**2)) * 10 ** (-SNR_DB / 20)
    hum = HUM_LEVEL * np.sin(2 * np.pi * HUM_HZ * np.arange(total) / MODEL_RATE)
    x = speech + noise + hum
    return (PEAK * x / np.abs(x).max()).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) float64 noise with a 1/f power spectrum (white noise shaped in the frequency domain)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / MODEL_RATE)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))
    return np.fft.irfft(spectrum, n)


def offline_enhancement(noisy: np.ndarray) -> np.ndarray:
    """(N,) float32: the bundled model's causal offline enhancement of ``noisy`` after PREROLL_S of silence."""
    from rtenhance.enhancer import enhance_offline
    from rtenhance.weights import bundled_weights, resolve_model

    if bundled_weights() is None:
        raise RuntimeError("this build bundles no weights; the live scenarios run the daemon with its defaults")
    preroll = np.zeros(int(PREROLL_S * MODEL_RATE), dtype=np.float32)
    model = resolve_model(None)[0].torch_model()
    enhanced = enhance_offline(model, np.concatenate([preroll, noisy]), causal=True)
    return enhanced[preroll.shape[0] :].astype(np.float32)
