"""Fine-tuning: start a run from the weights of an existing rtenhance or published GTCRN checkpoint."""

from __future__ import annotations

from pathlib import Path

from rtenhance.config import to_dict
from rtenhance.model.checkpoint import CheckpointError, file_sha256, load_model
from rtenhance.model.gtcrn import GTCRN


class InitError(ValueError):
    """``--init-from`` names a file that cannot start this run (unreadable, or another model shape)."""


def init_weights(model: GTCRN, path: str | Path) -> str:
    """Copy the weights of the checkpoint at ``path`` into ``model``.

    Args:
        model: the freshly built model of the run (its config must equal the checkpoint's).
        path: an rtenhance checkpoint (``best.pt``, bundled weights) or a published GTCRN checkpoint.

    Returns:
        The sha256 of the file, for the run's records.

    Raises:
        InitError: the file cannot be loaded, or holds another model shape.
    """
    try:
        source = load_model(path)
    except CheckpointError as exc:
        raise InitError(f"--init-from {exc}") from None
    if source.config != model.config:
        raise InitError(
            f"--init-from {path}: the checkpoint's model {to_dict(source.config)} differs from the config's"
            f" {to_dict(model.config)}"
        )
    model.load_state_dict(source.state_dict())
    return file_sha256(path)
