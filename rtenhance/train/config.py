"""Training configuration: every hyperparameter and data path, as frozen dataclasses loaded from YAML.

Relative paths are resolved against the current working directory (run ``rtenhance train`` from the
repository root; the defaults point at ``../shared/data``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rtenhance.config import ConfigError, ModelConfig, apply_overrides, from_dict


@dataclass(frozen=True)
class DataConfig:
    """Where the audio is and how the validation split is made.

    Attributes:
        clean_dir: folder of clean speech (FLAC/WAV, 16 kHz mono) with ``manifest.tsv``.
        noise_dir: folder of noise clips with ``manifest.tsv``.
        rir_dir: folder of room impulse responses with ``manifest.tsv`` (empty string: no reverberation).
        val_speakers: speakers (manifest ``speaker`` column) held out of training for validation; empty:
            hold out a seeded ``val_clip_fraction`` of the clips instead (for folders without speakers).
        val_clip_fraction: fraction of the speech clips held out when ``val_speakers`` is empty.
        val_noise_fraction: fraction of the noise clips held out of training for validation.
        min_clean_snr_db: clean clips whose manifest ``est_snr_db`` is below this are not used as targets.
        segment_seconds: length of one training example in seconds.
        val_mixtures: number of fixed validation mixtures.
        val_seconds: length of one validation mixture in seconds.
        workers: processes that make training batches ahead (0: the training process makes each batch
            when it needs it). Batches are the same either way (``StepBatches``).
        exclude_speakers: speakers left out of training and validation altogether (the second held-out
            test set, ``scripts/make_heldout_set.py``, is made from them).
        exclude_noise_categories: noise categories (manifest ``category`` column) left out likewise.
        premixed_steps: 0 mixes every step's batch afresh (on the fly); N > 0 repeats the batches of
            steps 0..N-1 (a fixed pre-mixed set of N batches, seen once per epoch of N steps).
    """

    clean_dir: str = "../shared/data/train/clean"
    noise_dir: str = "../shared/data/train/noise"
    rir_dir: str = "../shared/data/train/rir"
    val_speakers: tuple[str, ...] = ("ravdess_Actor_21", "ravdess_Actor_22", "emodb_12")
    val_clip_fraction: float = 0.05
    val_noise_fraction: float = 0.05
    min_clean_snr_db: float = 20.0
    segment_seconds: float = 4.0
    val_mixtures: int = 64
    val_seconds: float = 4.0
    workers: int = 0
    exclude_speakers: tuple[str, ...] = ()
    exclude_noise_categories: tuple[str, ...] = ()
    premixed_steps: int = 0

    def __post_init__(self) -> None:
        if self.premixed_steps < 0:
            raise ConfigError(f"data.premixed_steps: {self.premixed_steps!r} is not allowed; expected an integer >= 0")
        if self.workers < 0:
            raise ConfigError(f"data.workers: {self.workers!r} is not allowed; expected an integer >= 0")
        for key in ("val_clip_fraction", "val_noise_fraction"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"data.{key}: {value!r} is not allowed; expected 0 <= x < 1")
        if self.segment_seconds <= 0 or self.val_seconds <= 0:
            raise ConfigError("data.segment_seconds and data.val_seconds must be positive")


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly mixing: probabilities are per example, ranges are uniform [low, high].

    Attributes:
        snr_db: speech-to-noise ratio range in dB (noise = real clips plus synthetic noise).
        level_dbfs: RMS level of the noisy mixture in dB full scale; the target gets the same gain.
        reverb_prob: probability of convolving the speech with a room impulse response.
        early_ms: reverberant examples use as target the speech convolved with the RIR's first
            ``early_ms`` milliseconds after the direct path (direct path + early reflections).
        synthetic_prob: probability of adding synthetic stationary noise (white, pink, brown or hum).
        synthetic_only_prob: probability that the noise is only synthetic (no real clip).
        synthetic_rel_db: level of the synthetic noise relative to the real noise, in dB.
        second_noise_prob: probability of adding a second real noise clip.
        noise_speed_prob: probability of playing a real noise clip faster or slower (pitch and spectrum shift).
        noise_speed: range of the playback speed factor.
        noise_eq_prob: probability of a random smooth equaliser curve on each real noise clip.
        noise_eq_db: maximum gain, in dB either way, of the noise equaliser's control points.
        speech_eq_prob: probability of a random equaliser on the speech (microphone colour; target too).
        speech_eq_db: maximum gain, in dB either way, of the speech equaliser's control points.
        bandlimit_prob: probability of low-passing noisy and target alike.
        bandlimit_hz: range of the low-pass cut-off frequency in Hz.
        clip_prob: probability of clipping the noisy input (the target stays unclipped).
        clip_fraction: range of the fraction of noisy samples that are clipped.
        babble_prob: probability that the real noise is babble: ``babble_talkers`` random stretches of
            training speech (other speakers, other clips) summed at equal level.
        babble_talkers: range of the number of talkers in babble (integers, inclusive).
        codec_prob: probability of a codec-like degradation of the noisy input (the target stays clean):
            mu-law companding quantised to ``codec_bits`` bits, as telephone codecs do.
        codec_bits: range of the mu-law bit depth (8 is G.711; fewer is coarser).
    """

    snr_db: tuple[float, float] = (-5.0, 20.0)
    level_dbfs: tuple[float, float] = (-50.0, -12.0)
    reverb_prob: float = 0.3
    early_ms: float = 50.0
    synthetic_prob: float = 0.3
    synthetic_only_prob: float = 0.05
    synthetic_rel_db: tuple[float, float] = (-15.0, 5.0)
    second_noise_prob: float = 0.2
    noise_speed_prob: float = 0.5
    noise_speed: tuple[float, float] = (0.7, 1.4)
    noise_eq_prob: float = 0.5
    noise_eq_db: float = 12.0
    speech_eq_prob: float = 0.3
    speech_eq_db: float = 6.0
    bandlimit_prob: float = 0.1
    bandlimit_hz: tuple[float, float] = (3400.0, 7000.0)
    clip_prob: float = 0.05
    clip_fraction: tuple[float, float] = (0.001, 0.02)
    babble_prob: float = 0.0
    babble_talkers: tuple[int, int] = (3, 8)
    codec_prob: float = 0.0
    codec_bits: tuple[float, float] = (5.0, 8.0)

    def __post_init__(self) -> None:
        if not 1 <= self.babble_talkers[0] <= self.babble_talkers[1]:
            raise ConfigError(f"augment.babble_talkers: {list(self.babble_talkers)} is not allowed; expected [low, high], 1 <= low <= high")
        if not 2.0 <= self.codec_bits[0] <= self.codec_bits[1] <= 16.0:
            raise ConfigError(f"augment.codec_bits: {list(self.codec_bits)} is not allowed; expected [low, high] within 2..16")


@dataclass(frozen=True)
class OptimConfig:
    """Adam with linear warm-up then exponential decay (anytime: a run may stop at any step).

    Attributes:
        lr: peak learning rate.
        warmup_steps: steps of linear warm-up from 0 to ``lr``.
        half_life_steps: after warm-up the learning rate halves every this many steps.
        min_lr: floor of the learning rate.
        grad_clip_norm: maximum global gradient norm.
        weight_decay: Adam weight decay (L2).
        ema_decay: per-step decay of the moving average of the weights that is validated and saved as
            ``best.pt`` (0.999 averages about the last 1000 steps); 0 validates the raw weights.
    """

    lr: float = 1e-3
    warmup_steps: int = 200
    half_life_steps: int = 1500
    min_lr: float = 5e-5
    grad_clip_norm: float = 5.0
    weight_decay: float = 0.0
    ema_decay: float = 0.999

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"optim.ema_decay: {self.ema_decay!r} is not allowed; expected 0 <= x < 1")


@dataclass(frozen=True)
class LossConfig:
    """Weights of the official GTCRN hybrid loss (DESIGN section 2).

    Attributes:
        compress_exponent: magnitude compression exponent (0.3).
        ri_weight: weight of the MSE of the compressed real and imaginary parts.
        mag_weight: weight of the MSE of the compressed magnitudes.
        sisnr_weight: weight of the negative log10 SI-SNR of the waveform.
    """

    compress_exponent: float = 0.3
    ri_weight: float = 30.0
    mag_weight: float = 70.0
    sisnr_weight: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run.

    Attributes:
        name: run name; files go to ``runs_dir/name``.
        runs_dir: folder of runs.
        seed: seeds the model initialisation, the data mixing and the validation set.
        batch_size: examples per step.
        max_steps: stop after this many steps.
        log_every: steps between log lines.
        val_every: steps between validations.
        checkpoint_every: steps between checkpoints (``last.pt``).
        val_pesq: compute WB-PESQ during validation (a few seconds per validation).
        best_metric: validation metric that selects ``best.pt`` (higher is better).
        threads: torch CPU threads; 0 means all cores.
        device: "auto" (CUDA when present), "cpu" or "cuda".
        model: the network shape.
        init_from: "" starts from random weights; a path starts from the weights of that rtenhance or
            published GTCRN checkpoint (fine-tuning: fresh optimizer and schedule, warm-up from a low rate).
        data, augment, optim, loss: see their classes.
    """

    name: str = "main"
    runs_dir: str = "runs"
    seed: int = 1234
    batch_size: int = 16
    max_steps: int = 100000
    log_every: int = 50
    val_every: int = 500
    checkpoint_every: int = 200
    val_pesq: bool = True
    best_metric: Literal["pesq", "si_sdr", "neg_loss"] = "neg_loss"
    threads: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    init_from: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    @property
    def run_dir(self) -> Path:
        """Folder of this run's log and checkpoints."""
        return Path(self.runs_dir) / self.name


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML training config, apply ``key=value`` overrides and validate it.

    Raises:
        ConfigError: unknown keys or bad values (the message names them).
        OSError: the file cannot be read.
    """
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = loaded or {}
    return from_dict(TrainConfig, apply_overrides(data, overrides or []))
