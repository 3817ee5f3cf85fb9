"""Reading audio files block by block, with the operating system's reason when a file cannot be read.

libsndfile reports every failure of the file underneath as "System error."; here files are opened by
Python and handed to soundfile as a virtual file (``RecordingFile``), so the original ``OSError`` (its
errno: permission denied, no space left on device, ...) is kept and reported. Writing lives in
``rtenhance.audio_output``.

A Python signal handler that raises (Ctrl-C, the enhancer's SIGTERM) must not run inside those callbacks:
soundfile's own callback code would print the exception and fail the call with an unrelated error. Every
libsndfile call is therefore made inside ``interruptions_held()``, which delivers such a signal after the call.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import soundfile as sf

_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".w64", ".caf", ".mp3")
_FORMAT_OF_EXTENSION = {"oga": "OGG", "aif": "AIFF"}
# Files these extensions name are enhanced, in directory mode as in single-file mode (.mp3 needs
# libsndfile 1.1 or later).
AUDIO_EXTENSIONS = tuple(
    ext for ext in _EXTENSIONS if _FORMAT_OF_EXTENSION.get(ext[1:], ext[1:].upper()) in sf.available_formats()
)
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
READ_BLOCK_FRAMES = 1 << 16  # frames read at a time (4 s at 16 kHz)
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class AudioFileError(ValueError):
    """An input or output audio file cannot be used; the message names the file and the reason."""


class OutputError(AudioFileError):
    """The output cannot be written at all (a full disk, a read-only or missing folder): later files would
    fail the same way, so a batch stops."""


def os_reason(exc: OSError) -> str:
    """The lower-case reason of an OSError, e.g. "no space left on device"."""
    reason = exc.strerror or os.strerror(exc.errno or errno.EIO)
    return reason[0].lower() + reason[1:]


@contextmanager
def interruptions_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration of a libsndfile call, then hand the first one that came to
    the handler installed before (which may raise, e.g. ``KeyboardInterrupt``). Python runs signal handlers
    only in the main thread, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: caught.append(signum)) for signum in HELD_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if caught:
            _deliver(caught[0], previous[caught[0]])


def _deliver(signum: int, handler: object) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler != signal.SIG_IGN:
        signal.raise_signal(signum)


class RecordingFile:
    """A raw file descriptor with the methods soundfile's virtual I/O calls.

    soundfile calls these from C callbacks, where an exception would be printed and swallowed; instead the
    first exception (an ``OSError``, or an interruption such as ``KeyboardInterrupt``) is kept in
    ``error``, the call reports failure to libsndfile, and the caller re-raises ``error``.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.error: BaseException | None = None

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc

    def read(self, count: int) -> bytes:
        try:
            return os.read(self.fd, count)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller, see the class docstring
            self._fail(exc)
            return b""

    def write(self, data: bytes) -> int:
        view, done = memoryview(data), 0
        try:
            while done < len(view):
                done += os.write(self.fd, view[done:])
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
        return done

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        try:
            return os.lseek(self.fd, offset, whence)
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
            return -1

    def tell(self) -> int:
        return self.seek(0, os.SEEK_CUR)

    def raise_error(self) -> None:
        """Re-raise the kept exception, if any."""
        if self.error is not None:
            raise self.error


@dataclass(frozen=True)
class AudioInfo:
    """What an input file holds.

    Attributes:
        frames: samples per channel (as the header says; read to the end to be sure).
        sample_rate: Hz.
        channels: channel count.
        format: soundfile container format, e.g. "WAV".
        subtype: soundfile sample encoding, e.g. "PCM_24".
    """

    frames: int
    sample_rate: int
    channels: int
    format: str
    subtype: str

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


class AudioReader:
    """An input file open for reading block by block (a context manager).

    Raises:
        AudioFileError: missing, unreadable (with the operating system's reason) or non-audio file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise AudioFileError(f"{self.path}: no such file") from None
        except OSError as exc:
            raise AudioFileError(f"{self.path}: cannot read ({os_reason(exc)})") from None
        self._raw = RecordingFile(fd)
        try:
            with interruptions_held():
                self._file = sf.SoundFile(self._raw, "r")
        except BaseException as exc:  # noqa: BLE001 - _raise re-raises it or the file's own error
            os.close(fd)
            self._raise(exc)
        self.info = AudioInfo(self._file.frames, self._file.samplerate, self._file.channels, self._file.format,
                              self._file.subtype)

    def _raise(self, exc: BaseException | None) -> NoReturn:
        """Raise the error behind a failed soundfile call: the file's own ``OSError`` when there was one."""
        kept = self._raw.error
        if isinstance(kept, OSError):
            if kept.errno == errno.EISDIR:
                raise AudioFileError(f"{self.path}: is a directory") from None
            raise AudioFileError(f"{self.path}: cannot read ({os_reason(kept)})") from None
        if kept is not None:
            raise kept
        if isinstance(exc, (sf.LibsndfileError, RuntimeError, TypeError)):
            reason = str(exc).strip().split(": ")[-1] or type(exc).__name__
            raise AudioFileError(f"{self.path}: not a readable audio file ({reason})") from None
        raise exc if exc is not None else AudioFileError(f"{self.path}: cannot read")

    def blocks(self, frames: int = READ_BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """(n, C) float32 blocks to the end of the file; rejects non-finite samples and an empty file.

        Raises:
            AudioFileError: a read error (with its reason), NaN or infinite samples, or no samples at all.
        """
        total = 0
        while True:
            try:
                with interruptions_held():
                    block = self._file.read(frames, dtype="float32", always_2d=True)
            except BaseException as exc:  # noqa: BLE001 - _raise re-raises it or the file's own error
                self._raise(exc)
            if self._raw.error is not None:
                self._raise(None)
            if block.shape[0] == 0:
                break
            if not np.isfinite(block).all():
                raise AudioFileError(f"{self.path}: contains non-finite samples (NaN or infinity)")
            total += block.shape[0]
            yield block
        if total == 0:
            raise AudioFileError(f"{self.path}: contains no samples")

    def close(self) -> None:
        with interruptions_held():
            self._file.close()
        os.close(self._raw.fd)

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def probe_audio(path: str | os.PathLike[str]) -> AudioInfo:
    """The header of an input file (nothing decoded).

    Raises:
        AudioFileError: missing, unreadable or non-audio file.
    """
    with AudioReader(path) as reader:
        return reader.info


def output_encoding(path: Path, like: AudioInfo) -> tuple[str, str]:
    """(format, subtype) for writing ``path``: the input's when the container matches, else the default."""
    fmt = _format_for(path)
    if fmt == like.format and sf.check_format(fmt, like.subtype):
        return fmt, like.subtype
    return fmt, sf.default_subtype(fmt)


def _format_for(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    fmt = _FORMAT_OF_EXTENSION.get(ext, ext.upper())
    if fmt not in sf.available_formats():
        raise AudioFileError(f"{path}: unknown output format {path.suffix!r}; use one of {', '.join(AUDIO_EXTENSIONS)}")
    return fmt


@dataclass(frozen=True)
class Audio:
    """A whole decoded file (for short clips; long files are read with ``AudioReader.blocks``).

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
    """Read a whole file, rejecting missing, unreadable, non-audio, empty and non-finite input.

    Raises:
        AudioFileError: with the path and the reason.
    """
    with AudioReader(path) as reader:
        samples = np.concatenate(list(reader.blocks()))
        return Audio(samples, reader.info.sample_rate, reader.info.format, reader.info.subtype)


def write_audio_atomic(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int, fmt: str, subtype: str) -> None:
    """Write (N, C) samples to ``path`` atomically (see ``rtenhance.audio_output``), replacing it if present."""
    from rtenhance.audio_output import AtomicAudioWriter

    with AtomicAudioWriter(Path(path), sample_rate, samples.shape[1], fmt, subtype, overwrite=True) as writer:
        writer.write(samples)
        writer.commit()
