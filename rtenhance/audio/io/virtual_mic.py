"""The virtual microphone: a null sink the daemon plays into and a remap of its monitor named ``rtenhance``.

One daemon at a time owns it, through an ``OwnerLock`` in ``$XDG_RUNTIME_DIR``: a second instance refuses
to start instead of taking the first one's microphone away. The lock is a kernel file lock, released
however its owner ends; the owner's PID is written in the file and erased on a clean exit, so a PID
still there when the lock is free names an owner that was killed, whose modules are then removed.
After a sound-server restart (which drops every module) ``restore`` loads the modules again.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from rtenhance.audio.io import pulse
from rtenhance.audio.io.devices import PULSE_PREFIX, VIRTUAL_MIC, DeviceError, Endpoint, resolve

log = logging.getLogger(__name__)

VIRTUAL_SINK = "rtenhance_sink"  # null sink the daemon plays into
VIRTUAL_SOURCE = "rtenhance"  # the microphone applications see: a remap of the sink's monitor
VIRTUAL_RATE = 48000
LOCK_NAME = "rtenhance-virtual-mic.lock"
FALLBACK_LOCK_DIR = Path("~/.cache/rtenhance")  # without $XDG_RUNTIME_DIR
PID_BYTES = 32  # read from a lock file: a PID and a newline
# module arguments that name our modules; the remap source first: unloading the null sink also removes
# the remap source on its monitor, and unloading that module afterwards would fail
OWN_ARGUMENTS = (f"source_name={VIRTUAL_SOURCE}", f"sink_name={VIRTUAL_SINK}")


def default_lock_path() -> Path:
    """``$XDG_RUNTIME_DIR/rtenhance-virtual-mic.lock``, else the same name in ``~/.cache/rtenhance``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return (Path(runtime) if runtime else FALLBACK_LOCK_DIR.expanduser()) / LOCK_NAME


class OwnerLock:
    """An exclusive lock on a file that holds its owner's PID.

    Args:
        path: the lock file (created 0600; a symbolic link there is refused).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> int | None:
        """Take the lock and write our PID in the file.

        Returns:
            The PID of a previous owner that ended without releasing the lock (killed), or None.

        Raises:
            DeviceError: another live process holds the lock (the message names its PID), or the file
                cannot be opened.
        """
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise DeviceError(f"output {VIRTUAL_MIC!r}: cannot open the lock {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = _read_pid(fd)
            os.close(fd)
            who = f"pid {owner}" if owner else "another process"
            raise DeviceError(f"output {VIRTUAL_MIC!r}: another rtenhance ({who}) owns the virtual microphone; "
                              f"stop it first (lock {self.path})") from None
        previous = _read_pid(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return previous if previous != os.getpid() else None

    def release(self) -> None:
        """Erase our PID and unlock (idempotent); the file stays, so no other process can lock a removed file."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, PID_BYTES, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


class VirtualMic:
    """A microphone named ``rtenhance`` for other applications, owned by this process.

    ``create()`` takes the lock, removes what a killed owner left, loads the modules and returns the
    endpoint the daemon plays into; ``restore()`` loads them again after the server lost them;
    ``remove()`` unloads them and releases the lock.

    Args:
        lock_path: the owner lock; None for ``default_lock_path()``.
    """

    def __init__(self, lock_path: Path | None = None) -> None:
        self._lock = OwnerLock(lock_path or default_lock_path())
        self._modules: list[int] = []

    def create(self, sample_rate: int = 0) -> Endpoint:
        """Take the lock, load the modules and return the sink endpoint.

        Raises:
            DeviceError: another instance owns the microphone, or the sound server refused (for example
                no PulseAudio/PipeWire server running).
        """
        previous = self._lock.acquire()
        try:
            if previous is not None:
                log.warning("rtenhance pid %d ended without removing the virtual microphone: removing what it "
                            "left", previous)
            self._load()
        except DeviceError:
            self.remove()
            raise
        log.info("virtual microphone %r created (select it as the microphone in your call application)",
                 VIRTUAL_SOURCE)
        return resolve(f"{PULSE_PREFIX}{VIRTUAL_SINK}", "output", sample_rate)

    def restore(self) -> None:
        """Load the modules again (after a server restart, or after someone unloaded one of them).

        Raises:
            DeviceError: the sound server refused.
        """
        self._modules.clear()  # indices of a server that is gone, or of modules that are
        self._load()
        log.info("virtual microphone %r recreated", VIRTUAL_SOURCE)

    def _load(self) -> None:
        """Remove any module named like ours (we hold the lock: none is another live instance's), then load."""
        try:
            for index in pulse.modules_with_arguments(*OWN_ARGUMENTS):
                pulse.unload_module(index)
            self._modules.append(pulse.load_module(
                "module-null-sink", f"sink_name={VIRTUAL_SINK}", "channels=1", f"rate={VIRTUAL_RATE}",
                "sink_properties=device.description=rtenhance-output",
            ))
            self._modules.append(pulse.load_module(
                "module-remap-source", f"master={VIRTUAL_SINK}.monitor", f"source_name={VIRTUAL_SOURCE}",
                "channels=1", "source_properties=device.description=rtenhance-microphone",
            ))
        except pulse.PulseError as exc:
            raise DeviceError(f"output {VIRTUAL_MIC!r}: cannot create the virtual microphone ({exc})") from None

    def remove(self) -> None:
        """Unload this object's modules (the remap source first) and release the lock; errors are logged.

        Only modules that still carry our arguments are unloaded: after a server restart the same index
        may name another module.
        """
        try:
            if self._modules:
                for index in [i for i in pulse.modules_with_arguments(*OWN_ARGUMENTS) if i in self._modules]:
                    pulse.unload_module(index)
        except pulse.PulseError as exc:
            log.warning("could not remove the virtual microphone: %s", exc)
        finally:
            self._modules.clear()
            self._lock.release()
