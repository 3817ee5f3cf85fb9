"""Logging set-up for the command line: plain lines on a terminal, journald priorities under systemd.

Under systemd, stderr goes to the journal, which adds its own timestamp; systemd then sets
``JOURNAL_STREAM`` to the device and inode of that stream. When stderr is that stream, each line carries
the sd-daemon priority prefix (``<3>`` error, ``<4>`` warning, ``<6>`` info, ``<7>`` debug; see
sd-daemon(3)) and no timestamp, so ``journalctl -p warning`` selects by level.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"
SD_CRIT, SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG = 2, 3, 4, 6, 7  # sd-daemon(3) priorities


def sd_priority(levelno: int) -> int:
    """The sd-daemon priority of a ``logging`` level."""
    if levelno >= logging.CRITICAL:
        return SD_CRIT
    if levelno >= logging.ERROR:
        return SD_ERR
    if levelno >= logging.WARNING:
        return SD_WARNING
    if levelno >= logging.INFO:
        return SD_INFO
    return SD_DEBUG


class JournalFormatter(logging.Formatter):
    """``<N>name: message``, the prefix repeated on every line of a multi-line record (the journal makes
    one entry per line)."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{sd_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines() or [""])


def writes_to_journal(stream: TextIO) -> bool:
    """Whether ``stream`` is the journal stream systemd named in ``JOURNAL_STREAM`` ("DEVICE:INODE")."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        info = os.fstat(stream.fileno())
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False


def configure_logging(verbose: bool, stream: TextIO | None = None) -> None:
    """Log to ``stream`` (default stderr) at INFO, or DEBUG when ``verbose``, in the journal's format when
    the stream is the journal."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter() if writes_to_journal(stream) else logging.Formatter(PLAIN_FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
