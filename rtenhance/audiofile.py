"""Reading and writing audio files with soundfile; every write is atomic (temporary file + rename)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".w64", ".caf")
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


class AudioFileError(ValueError):
    """An input or output audio file cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class Audio:
    """Decoded audio.

    Attributes:
        samples: (N, C) float32 in [-1, 1] for integer formats.
        sample_rate: Hz.
        format: soundfile container format, e.g. "WAV".
        subtype: soundfile sample encoding, e.g. "PCM_24".
    """

    samples: np.ndarray
    sample_rate: int
    format: str
    subtype: str


def read_audio(path: str | os.PathLike[str]) -> Audio:
    """Read a whole file, rejecting missing, non-audio, empty and non-finite input.

    Raises:
        AudioFileError: with the path and the reason.
    """
    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a directory")
    try:
        info = sf.info(str(path))
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioFileError(f"{path}: not a readable audio file ({str(exc).strip() or type(exc).__name__})") from None
    if samples.shape[0] == 0:
        raise AudioFileError(f"{path}: contains no samples")
    if not np.isfinite(samples).all():
        raise AudioFileError(f"{path}: contains non-finite samples (NaN or infinity)")
    return Audio(samples, int(rate), info.format, info.subtype)


def output_encoding(path: Path, like: Audio) -> tuple[str, str]:
    """(format, subtype) for writing ``path``: the input's when the container matches, else the default."""
    fmt = _format_for(path)
    if fmt == like.format and sf.check_format(fmt, like.subtype):
        return fmt, like.subtype
    return fmt, sf.default_subtype(fmt)


def _format_for(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    formats = {"oga": "OGG", "aif": "AIFF"}
    fmt = formats.get(ext, ext.upper())
    if fmt not in sf.available_formats():
        raise AudioFileError(f"{path}: unknown output format {path.suffix!r}; use one of {', '.join(AUDIO_EXTENSIONS)}")
    return fmt


def write_audio_atomic(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int, fmt: str, subtype: str) -> None:
    """Write (N, C) samples to ``path`` via a temporary file in the same folder, then rename.

    Integer encodings are clipped to [-1, 1]. On any error no file is left behind.
    """
    path = Path(path)
    if subtype not in FLOAT_SUBTYPES:
        samples = np.clip(samples, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, samples, sample_rate, format=fmt, subtype=subtype)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
