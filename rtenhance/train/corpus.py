"""Training audio held in memory: clean speech, noise clips and room impulse responses.

Each folder has a ``manifest.tsv`` (columns ``file`` and, where known, ``speaker`` and ``est_snr_db``).
Everything is read once as float32 at the model rate; the whole shared training set is a few hundred MB.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from rtenhance.train.config import DataConfig

MANIFEST = "manifest.tsv"
AUDIO_SUFFIXES = (".flac", ".wav")


class CorpusError(ValueError):
    """A training folder is missing, empty or holds audio at the wrong rate."""


@dataclass(frozen=True)
class Clip:
    """One audio file in memory.

    Attributes:
        name: file name.
        samples: (N,) float32 samples at the model rate.
        speaker: speaker or category label ("" when unknown).
    """

    name: str
    samples: np.ndarray
    speaker: str = ""


@dataclass(frozen=True)
class Corpus:
    """The clips one split (training or validation) draws from."""

    speech: tuple[Clip, ...]
    noise: tuple[Clip, ...]
    rirs: tuple[Clip, ...]


def _manifest_rows(folder: Path) -> list[dict[str, str]]:
    manifest = folder / MANIFEST
    if manifest.is_file():
        with open(manifest, newline="") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    return [{"file": p.name} for p in sorted(folder.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES]


def read_folder(folder: str | Path, sample_rate: int, min_snr_db: float | None = None) -> list[Clip]:
    """Read every clip listed in ``folder``'s manifest (or every audio file when there is none).

    Args:
        folder: the audio folder.
        sample_rate: required sample rate in Hz.
        min_snr_db: skip rows whose ``est_snr_db`` is below this (None: keep all).

    Raises:
        CorpusError: the folder is missing or empty, or a file has another rate.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"{folder}: no such folder (set the data paths in the training config)")
    clips = []
    for row in _manifest_rows(folder):
        snr = row.get("est_snr_db", "")
        if min_snr_db is not None and snr not in ("", None) and float(snr) < min_snr_db:
            continue
        samples, rate = sf.read(folder / row["file"], dtype="float32", always_2d=True)
        if rate != sample_rate:
            raise CorpusError(f"{folder / row['file']}: {rate} Hz, expected {sample_rate} Hz")
        mono = samples.mean(axis=1).astype(np.float32)
        if mono.size:
            clips.append(Clip(row["file"], mono, row.get("speaker") or row.get("category") or ""))
    if not clips:
        raise CorpusError(f"{folder}: no audio files")
    return clips


def split_corpus(
    speech: list[Clip], noise: list[Clip], rirs: list[Clip], cfg: DataConfig, seed: int
) -> tuple[Corpus, Corpus]:
    """Split into (training, validation): held-out speakers (or clips), and a seeded fraction of the noise.

    Speakers and noise categories named in ``cfg.exclude_*`` are in neither split.

    RIRs are shared by both splits (they are simulated rooms, not recordings of people).

    Raises:
        CorpusError: a split would be empty.
    """
    rng = np.random.default_rng(seed)
    speech = [c for c in speech if c.speaker not in set(cfg.exclude_speakers)]
    noise = [c for c in noise if c.speaker not in set(cfg.exclude_noise_categories)]
    if cfg.val_speakers:
        held = set(cfg.val_speakers)
        is_val = [c.speaker in held for c in speech]
    else:
        val_idx = set(rng.permutation(len(speech))[: max(1, int(round(cfg.val_clip_fraction * len(speech))))].tolist())
        is_val = [i in val_idx for i in range(len(speech))]
    train_speech = [c for c, v in zip(speech, is_val) if not v]
    val_speech = [c for c, v in zip(speech, is_val) if v]
    order = rng.permutation(len(noise))
    n_val_noise = int(round(cfg.val_noise_fraction * len(noise)))
    val_idx = set(order[:n_val_noise].tolist())
    train_noise = [c for i, c in enumerate(noise) if i not in val_idx]
    val_noise = [c for i, c in enumerate(noise) if i in val_idx] or train_noise
    if not noise:
        raise CorpusError(f"data.exclude_noise_categories {list(cfg.exclude_noise_categories)} leave no noise clips")
    if not train_speech or not val_speech:
        raise CorpusError(
            f"data.val_speakers {list(cfg.val_speakers)} leave {len(train_speech)} training and {len(val_speech)}"
            " validation clips (name speakers of the manifest's speaker column, or [] to hold out random clips)"
        )
    return (
        Corpus(tuple(train_speech), tuple(train_noise), tuple(rirs)),
        Corpus(tuple(val_speech), tuple(val_noise), tuple(rirs)),
    )


def load_corpora(cfg: DataConfig, sample_rate: int, seed: int) -> tuple[Corpus, Corpus]:
    """Read the configured folders and split them into (training, validation) corpora."""
    speech = read_folder(cfg.clean_dir, sample_rate, cfg.min_clean_snr_db)
    noise = read_folder(cfg.noise_dir, sample_rate)
    rirs = read_folder(cfg.rir_dir, sample_rate) if cfg.rir_dir else []
    return split_corpus(speech, noise, rirs, cfg, seed)
