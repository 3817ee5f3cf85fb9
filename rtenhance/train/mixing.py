"""On-the-fly mixing of noisy/clean training pairs with its own seeded random generator.

One example: a random speech segment (short clips concatenated), sometimes coloured by a random equaliser
and reverberated with a room impulse response, plus real noise (looped clips, sometimes sped up or slowed
down and equalised, to stretch the few noise recordings into more sounds) and sometimes synthetic
stationary noise (white, pink, brown, mains hum), at a random SNR and a random level, sometimes
band-limited and clipped; optionally babble (many training talkers) as the noise and a codec-like
quantisation of the noisy input.

Target under reverberation: the speech convolved with the direct path and the early reflections (the
first ``early_ms`` milliseconds of the RIR after its strongest tap); the late reverberation counts as noise
to remove. Band-limiting applies to noisy and target alike (lost bands cannot be recovered); clipping only
to the noisy input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import signal

from rtenhance.train.config import AugmentConfig
from rtenhance.train.corpus import Clip, Corpus

POWER_FLOOR = 1e-10  # mean square below which a segment counts as silent
MAX_SPEECH_TRIES = 10  # redraws of a silent speech segment before accepting it
PEAK_LIMIT = 0.99  # full-scale peak the mixture is scaled under (before clipping augmentation)
MAINS_HZ = (50.0, 60.0)
HUM_HARMONICS = 8  # harmonics of the mains frequency (including the fundamental)
HUM_DRIFT = 0.01  # relative random detuning of the mains frequency
LOWPASS_ORDER = 8  # Butterworth order of the band-limiting filter
SECOND_NOISE_REL_DB = (-10.0, 0.0)  # level of a second real noise clip relative to the first
SYNTHETIC_KINDS = ("white", "pink", "brown", "hum")
EQ_POINTS = 8  # control points of a random equaliser curve, log-spaced in frequency
EQ_LOW_HZ = 50.0  # lowest control point
MU_LAW = 255.0  # companding constant of G.711 mu-law


@dataclass(frozen=True)
class Mixture:
    """One training example; all arrays (N,) float32.

    Attributes:
        noisy: model input.
        target: what the model should output.
        speech: the speech component of ``noisy`` (before clipping).
        noise: the noise component of ``noisy`` (before clipping); ``speech + noise`` is ``noisy`` unclipped.
        snr_db: the requested speech-to-noise ratio.
    """

    noisy: np.ndarray
    target: np.ndarray
    speech: np.ndarray
    noise: np.ndarray
    snr_db: float


def power(x: np.ndarray) -> float:
    """Mean square of ``x``."""
    return float(np.mean(np.square(x, dtype=np.float64)))


def scale_to_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Scale ``noise`` so that 10 log10(power(speech) / power(noise)) equals ``snr_db``."""
    gain = np.sqrt(max(power(speech), POWER_FLOOR) / (max(power(noise), POWER_FLOOR) * 10.0 ** (snr_db / 10.0)))
    return (noise * gain).astype(np.float32)


def unit_rms(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to RMS 1 (unchanged when silent)."""
    p = power(x)
    return (x / np.sqrt(p)).astype(np.float32) if p > POWER_FLOOR else x.astype(np.float32)


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1 / f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.shape[0], dtype=np.float64)
    f[0] = 1.0
    spectrum *= f ** (-exponent / 2.0)
    spectrum[0] = 0.0
    return unit_rms(np.fft.irfft(spectrum, n=n))


def mains_hum(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """50 or 60 Hz hum with random harmonic amplitudes and phases, unit RMS."""
    f0 = MAINS_HZ[rng.integers(len(MAINS_HZ))] * (1.0 + HUM_DRIFT * rng.uniform(-1.0, 1.0))
    t = np.arange(n) / sample_rate
    harmonics = np.arange(1, HUM_HARMONICS + 1)
    amps = rng.uniform(0.0, 1.0, HUM_HARMONICS) / harmonics ** rng.uniform(0.0, 1.5)
    phases = rng.uniform(0.0, 2.0 * np.pi, HUM_HARMONICS)
    hum = (amps[:, None] * np.sin(2.0 * np.pi * f0 * harmonics[:, None] * t + phases[:, None])).sum(axis=0)
    return unit_rms(hum)


def synthetic_noise(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """One synthetic stationary noise of a random kind, unit RMS."""
    kind = SYNTHETIC_KINDS[rng.integers(len(SYNTHETIC_KINDS))]
    if kind == "hum":
        return mains_hum(rng, n, sample_rate)
    return coloured_noise(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])


def speech_segment(rng: np.random.Generator, clips: tuple[Clip, ...], n: int) -> np.ndarray:
    """A random n-sample stretch of speech: a crop of one clip, or several clips back to back."""
    out = np.zeros(n, dtype=np.float32)
    pos = 0
    while pos < n:
        x = clips[rng.integers(len(clips))].samples
        take = min(x.shape[0], n - pos)
        start = rng.integers(x.shape[0] - take + 1)
        out[pos : pos + take] = x[start : start + take]
        pos += take
    return out


def noise_segment(rng: np.random.Generator, clips: tuple[Clip, ...], n: int, speed: float = 1.0) -> np.ndarray:
    """A random n-sample stretch of a random noise clip, looped from a random offset.

    ``speed`` != 1 plays the clip faster (higher, brighter) or slower, by linear interpolation.
    """
    x = clips[rng.integers(len(clips))].samples
    start = rng.integers(x.shape[0])
    if speed == 1.0:
        return x[(start + np.arange(n)) % x.shape[0]].astype(np.float32)
    position = start + speed * np.arange(n)  # fractional read positions, in samples
    left = np.floor(position).astype(np.int64)
    frac = (position - left).astype(np.float32)
    a, b = x[left % x.shape[0]], x[(left + 1) % x.shape[0]]
    return (a + frac * (b - a)).astype(np.float32)


def random_eq(rng: np.random.Generator, x: np.ndarray, max_db: float, sample_rate: int) -> np.ndarray:
    """``x`` through a random smooth equaliser: gains uniform in +-max_db at log-spaced frequencies,
    interpolated over log frequency, applied in the frequency domain (zero phase)."""
    n = x.shape[0]
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    points = np.geomspace(EQ_LOW_HZ, sample_rate / 2.0, EQ_POINTS)
    gains_db = rng.uniform(-max_db, max_db, EQ_POINTS)
    curve = 10.0 ** (np.interp(np.log(np.maximum(freqs, 1.0)), np.log(points), gains_db) / 20.0)
    return np.fft.irfft(np.fft.rfft(x) * curve, n=n).astype(np.float32)


def babble(rng: np.random.Generator, clips: tuple[Clip, ...], n: int, talkers: int) -> np.ndarray:
    """``talkers`` random n-sample stretches of the speech clips (mostly other talkers) summed at equal level, unit RMS."""
    return unit_rms(sum((unit_rms(speech_segment(rng, clips, n)) for _ in range(talkers)), np.zeros(n, np.float32)))


def mu_law_quantise(x: np.ndarray, bits: float) -> np.ndarray:
    """``x`` (full scale 1) through mu-law companding, rounding to 2**bits levels, and expansion."""
    y = np.sign(x) * np.log1p(MU_LAW * np.minimum(np.abs(x), 1.0)) / np.log1p(MU_LAW)
    half_levels = 2.0 ** (bits - 1.0)
    y = np.round(y * half_levels) / half_levels
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(MU_LAW)) / MU_LAW).astype(np.float32)


def reverberate(speech: np.ndarray, rir: np.ndarray, early_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Convolve with a room impulse response, aligned so the strongest tap (direct path) lands at lag 0.

    Returns:
        (reverberant speech, direct path + early reflections), both (N,) float32.
    """
    n = speech.shape[0]
    rir = rir / max(float(np.max(np.abs(rir))), POWER_FLOOR)
    direct = int(np.argmax(np.abs(rir)))
    early = rir[: direct + early_samples]
    wet = signal.oaconvolve(speech, rir)[direct : direct + n]
    dry = signal.oaconvolve(speech, early)[direct : direct + n]
    return wet.astype(np.float32), dry.astype(np.float32)


class Mixer:
    """Makes random examples from a corpus; all randomness comes from one seeded numpy generator.

    Args:
        corpus: the clips to draw from.
        augment: the augmentation configuration.
        sample_rate: model rate in Hz.
        seed: seed of the generator (an int, or a tuple of ints such as (run seed, step)).
    """

    def __init__(self, corpus: Corpus, augment: AugmentConfig, sample_rate: int, seed: int | tuple[int, ...]) -> None:
        self.corpus = corpus
        self.cfg = augment
        self.sample_rate = sample_rate
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def state_dict(self) -> dict[str, Any]:
        """The generator state (plain ints and strings)."""
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from ``state_dict``."""
        self.rng.bit_generator.state = state["bit_generator"]

    def _uniform(self, bounds: tuple[float, float]) -> float:
        return float(self.rng.uniform(bounds[0], bounds[1]))

    def _speech(self, n: int) -> np.ndarray:
        for _ in range(MAX_SPEECH_TRIES):
            speech = speech_segment(self.rng, self.corpus.speech, n)
            if power(speech) > POWER_FLOOR:
                break
        return speech

    def _real_noise(self, n: int) -> np.ndarray:
        cfg = self.cfg
        speed = self._uniform(cfg.noise_speed) if self.rng.random() < cfg.noise_speed_prob else 1.0
        noise = noise_segment(self.rng, self.corpus.noise, n, speed)
        if self.rng.random() < cfg.noise_eq_prob:
            noise = random_eq(self.rng, noise, cfg.noise_eq_db, self.sample_rate)
        return unit_rms(noise)

    def _noise(self, n: int) -> np.ndarray:
        cfg = self.cfg
        noise = np.zeros(n, dtype=np.float32)
        if cfg.babble_prob > 0 and self.rng.random() < cfg.babble_prob:  # no draw when off: streams unchanged
            talkers = int(self.rng.integers(cfg.babble_talkers[0], cfg.babble_talkers[1] + 1))
            noise += babble(self.rng, self.corpus.speech, n, talkers)
        elif self.rng.random() >= cfg.synthetic_only_prob:
            noise += self._real_noise(n)
            if self.rng.random() < cfg.second_noise_prob:
                noise += self._real_noise(n) * np.float32(10.0 ** (self._uniform(SECOND_NOISE_REL_DB) / 20.0))
        if power(noise) <= POWER_FLOOR or self.rng.random() < cfg.synthetic_prob:
            rel = 10.0 ** (self._uniform(cfg.synthetic_rel_db) / 20.0) if power(noise) > POWER_FLOOR else 1.0
            noise += synthetic_noise(self.rng, n, self.sample_rate) * np.float32(rel)
        return noise

    def example(self, seconds: float) -> Mixture:
        """Draw one example of ``seconds`` seconds."""
        cfg = self.cfg
        n = int(round(seconds * self.sample_rate))
        speech = self._speech(n)
        if self.rng.random() < cfg.speech_eq_prob:
            speech = random_eq(self.rng, speech, cfg.speech_eq_db, self.sample_rate)
        target = speech
        if self.corpus.rirs and self.rng.random() < cfg.reverb_prob:
            rir = self.corpus.rirs[self.rng.integers(len(self.corpus.rirs))].samples
            speech, target = reverberate(speech, rir, int(round(cfg.early_ms * self.sample_rate / 1000.0)))
        snr_db = self._uniform(cfg.snr_db)
        noise = scale_to_snr(speech, self._noise(n), snr_db)
        noisy = speech + noise
        gain = 10.0 ** (self._uniform(cfg.level_dbfs) / 20.0) / np.sqrt(max(power(noisy), POWER_FLOOR))
        gain = min(gain, PEAK_LIMIT / max(float(np.max(np.abs(noisy))), POWER_FLOOR))
        speech, noise, target = (np.float32(gain) * a for a in (speech, noise, target))
        noisy = speech + noise
        if self.rng.random() < cfg.bandlimit_prob:
            sos = signal.butter(LOWPASS_ORDER, self._uniform(cfg.bandlimit_hz), fs=self.sample_rate, output="sos")
            speech, noise, target = (signal.sosfilt(sos, a).astype(np.float32) for a in (speech, noise, target))
            noisy = speech + noise
        if self.rng.random() < cfg.clip_prob:
            level = float(np.quantile(np.abs(noisy), 1.0 - self._uniform(cfg.clip_fraction)))
            noisy = np.clip(noisy, -level, level)
        if cfg.codec_prob > 0 and self.rng.random() < cfg.codec_prob:
            noisy = mu_law_quantise(noisy, self._uniform(cfg.codec_bits))
        return Mixture(noisy.astype(np.float32), target.astype(np.float32), speech, noise, snr_db)


class StepBatches(torch.utils.data.Dataset):
    """The training batches, indexed by step: example ``i`` of batch ``k`` is a pure function of (seed, k, i).

    Each example has its own generator seeded with ``[seed, k, i]``, so any process can make any batch or
    any part of it: worker processes make batches in parallel, a resumed run needs only its step to
    continue the same stream, and under distributed training rank ``r`` of ``world_size`` makes its own
    contiguous share of the global batch (the union over ranks is the single-process batch).

    Args:
        corpus: the clips to draw from.
        augment: the augmentation configuration.
        sample_rate: model rate in Hz.
        seed: the run's seed.
        batch_size: examples per global batch (all ranks together); a multiple of ``world_size``.
        seconds: length of one example in seconds.
        premixed_steps: 0: every step has its own batch; N > 0: step k gets the batch of step k mod N.
        rank: this process's rank.
        world_size: number of processes sharing each batch.
    """

    def __init__(
        self,
        corpus: Corpus,
        augment: AugmentConfig,
        sample_rate: int,
        seed: int,
        batch_size: int,
        seconds: float,
        premixed_steps: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not a multiple of the world size {world_size}")
        self.corpus = corpus
        self.augment = augment
        self.sample_rate = sample_rate
        self.seed = seed
        self.seconds = seconds
        self.premixed_steps = premixed_steps
        share = batch_size // world_size
        self.examples = range(rank * share, (rank + 1) * share)

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B / world_size, N) noisy and target float32 tensors: this rank's share of batch ``step``."""
        key = step % self.premixed_steps if self.premixed_steps else step
        mixtures = [
            Mixer(self.corpus, self.augment, self.sample_rate, (self.seed, key, i)).example(self.seconds)
            for i in self.examples
        ]
        noisy = torch.from_numpy(np.stack([m.noisy for m in mixtures]))
        target = torch.from_numpy(np.stack([m.target for m in mixtures]))
        return noisy, target
