"""PyTorch checkpoint -> the torch-free ``.npz`` weights file (needs PyTorch; run once per checkpoint)."""

from __future__ import annotations

import os
from pathlib import Path

from rtenhance.weights.errors import CheckpointError
from rtenhance.weights.model_weights import ModelWeights, require_torch
from rtenhance.weights.npz_format import NPZ_SUFFIX, save_npz


def convert_checkpoint(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> ModelWeights:
    """Load a PyTorch checkpoint (rtenhance's own or a published GTCRN one, strictly checked) and write
    it to ``target`` in the torch-free format, atomically.

    Returns:
        The converted weights.

    Raises:
        CheckpointError: the source cannot be used, or the target is not a ``.npz`` path.
        TorchMissing: PyTorch is not installed.
    """
    source, target = Path(source), Path(target)
    if target.suffix.lower() != NPZ_SUFFIX:
        raise CheckpointError(f"{target}: the torch-free weights file must end in {NPZ_SUFFIX}")
    if target.resolve() == source.resolve():
        raise CheckpointError(f"{target}: the output equals the input")
    require_torch("converting a PyTorch checkpoint")
    from rtenhance.model.checkpoint import file_sha256, load_model

    weights = ModelWeights.from_model(load_model(source))
    save_npz(weights, target, source={"file": source.name, "sha256": file_sha256(source)})
    return weights
