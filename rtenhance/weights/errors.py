"""The error every weights loader raises, importable without PyTorch."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A weights file cannot be used; the message says which file and what is wrong."""
