"""Writing enhanced audio files: streamed into a hidden partial file, renamed into place when complete.

A partial file is named ``.NAME.rtenhance-PID-TOKEN.part`` beside the output. It is created with the mode
a normal new file gets (0666 less the umask), removed on any error or interruption (SIGINT, and SIGTERM
once the CLI turns it into an exception), and a later run removes the partial files of processes that
no longer exist (``remove_stale_parts``), e.g. after a ``kill -9``. The rename does not replace a file
that appeared meanwhile unless overwriting was asked for.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from pathlib import Path

import numpy as np
import soundfile as sf

from rtenhance.audiofile import FLOAT_SUBTYPES, AudioFileError, OutputError, RecordingFile, interruptions_held, os_reason

_PART = re.compile(r"^\..+\.rtenhance-(?P<pid>\d+)-[0-9a-f]{8}\.part$")
_NO_HARD_LINKS = (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS)
NEW_FILE_MODE = 0o666  # less the umask, as any program creating a file


def part_path(dst: Path) -> Path:
    """A fresh partial-file name for ``dst`` (this process's PID and a random token)."""
    return dst.with_name(f".{dst.name}.rtenhance-{os.getpid()}-{secrets.token_hex(4)}.part")


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own PID on a file we did not just create: a reused PID
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_parts(folder: Path) -> int:
    """Remove the partial files of ours in ``folder`` whose process is gone; returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = _PART.match(entry.name)
        if match and entry.is_file(follow_symlinks=False) and not _running(int(match["pid"])):
            try:
                os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def _create(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, NEW_FILE_MODE)


def check_writable_folder(folder: Path) -> None:
    """Create ``folder`` if needed and check that a file can be created in it (before any computing).

    Raises:
        OutputError: the folder cannot be created or written (read-only, permissions, not a folder).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = part_path(folder / "probe")
        os.close(_create(probe))
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write output files here ({os_reason(exc)})") from None


class AtomicAudioWriter:
    """An output file written block by block into a partial file (a context manager).

    Args:
        dst: the output path.
        sample_rate: Hz.
        channels: channel count.
        fmt: soundfile container format.
        subtype: soundfile sample encoding; integer encodings are clipped to [-1, 1].
        overwrite: replace ``dst`` if it exists when committing; otherwise refuse.

    Raises:
        OutputError: the partial file cannot be created or written (the reason: no space left on device,
            read-only file system, ...).
        AudioFileError: ``dst`` exists at commit and ``overwrite`` is false, or libsndfile refuses the encoding.
    """

    def __init__(self, dst: Path, sample_rate: int, channels: int, fmt: str, subtype: str, overwrite: bool) -> None:
        self.dst = dst
        self.part = part_path(dst)
        self._overwrite = overwrite
        self._clip = subtype not in FLOAT_SUBTYPES
        try:
            fd = _create(self.part)
        except OSError as exc:
            raise OutputError(f"{dst}: cannot write ({os_reason(exc)})") from None
        self._raw = RecordingFile(fd)
        self._file: sf.SoundFile | None = None
        try:
            with interruptions_held():
                self._file = sf.SoundFile(self._raw, "w", sample_rate, channels, subtype, format=fmt)
        except BaseException as exc:  # noqa: BLE001 - _raise maps it to the file's own error
            self.abort()
            self._raise(exc)

    def _raise(self, exc: BaseException | None) -> None:
        kept = self._raw.error
        if isinstance(kept, OSError):
            raise OutputError(f"{self.dst}: {os_reason(kept)}") from None
        if kept is not None:
            raise kept
        if isinstance(exc, (sf.LibsndfileError, RuntimeError)):
            raise AudioFileError(f"{self.dst}: cannot write ({str(exc).strip().split(': ')[-1]})") from None
        if exc is not None:
            raise exc

    def write(self, samples: np.ndarray) -> None:
        """Append (n, C) float32 samples."""
        assert self._file is not None
        if self._clip:
            samples = np.clip(samples, -1.0, 1.0)
        try:
            with interruptions_held():
                self._file.write(samples)
        except BaseException as exc:  # noqa: BLE001
            self._raise(exc)
        self._raise(None)

    def commit(self) -> None:
        """Finish the file (header, fsync) and move it to ``dst``."""
        assert self._file is not None
        try:
            with interruptions_held():
                self._file.close()
            self._raise(None)
            os.fsync(self._raw.fd)
        except OSError as exc:
            raise OutputError(f"{self.dst}: {os_reason(exc)}") from None
        except BaseException as exc:  # noqa: BLE001
            self._raise(exc)
        os.close(self._raw.fd)
        self._raw.fd = -1
        self._move()

    def _move(self) -> None:
        if self._overwrite:
            os.replace(self.part, self.dst)
            return
        try:
            os.link(self.part, self.dst)  # fails if dst exists: never replaces a file that appeared meanwhile
        except FileExistsError:
            raise AudioFileError(f"{self.dst}: exists; pass --overwrite to replace it") from None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise OutputError(f"{self.dst}: {os_reason(exc)}") from None
            if self.dst.exists():
                raise AudioFileError(f"{self.dst}: exists; pass --overwrite to replace it") from None
            os.replace(self.part, self.dst)
            return
        self.part.unlink()

    def abort(self) -> None:
        """Close and remove the partial file (idempotent); an interruption meanwhile is delivered after."""
        with interruptions_held():
            if self._file is not None and not self._file.closed:
                try:
                    self._file.close()
                except BaseException:  # noqa: BLE001 - the file is removed anyway
                    pass
            if self._raw.fd >= 0:
                os.close(self._raw.fd)
                self._raw.fd = -1
            self.part.unlink(missing_ok=True)

    def __enter__(self) -> AtomicAudioWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()
