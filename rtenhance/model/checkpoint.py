"""Checkpoints: rtenhance's own self-describing files, and the published GTCRN state_dicts.

Our format is a plain dict ``{"format": "rtenhance-gtcrn", "version": 1, "config": {...}, "state_dict":
{...}}`` (plus optional ``"meta"``), loaded with ``torch.load(weights_only=True)`` so that a file can never
execute code. Published GTCRN files are ``{"model": state_dict, ...}`` with the official module names.
Loading is strict: every model size in the config bounded (``ModelConfig``), every key used, every shape
checked before the model is allocated, the fixed ERB matrices compared with ours.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from rtenhance.config import ConfigError, ModelConfig, from_dict, to_dict
from rtenhance.model.gtcrn import GTCRN
from rtenhance.weights.errors import CheckpointError

CHECKPOINT_FORMAT = "rtenhance-gtcrn"
CHECKPOINT_VERSION = 1
ERB_TOLERANCE = 1e-6  # published ERB matrices must equal ours to this max abs difference

# Published (official) module names -> ours.
_PUBLISHED_RENAMES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^dpgrnn(\d+)\."), "dpgrnns.{}."),
    (re.compile(r"^erb\.erb_fc\.weight$"), "erb.compress_weight"),
    (re.compile(r"^erb\.ierb_fc\.weight$"), "erb.expand_weight"),
]
_FIXED_BUFFERS = ("erb.compress_weight", "erb.expand_weight")

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "atomic_torch_save", "file_sha256", "load_model",
           "save_checkpoint"]


def _published_to_ours(key: str) -> str:
    for pattern, template in _PUBLISHED_RENAMES:
        m = pattern.match(key)
        if m:
            if m.groups():
                return template.format(int(m.group(1)) - 1) + key[m.end() :]
            return template
    return key


def _read(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for truncated, foreign or unsafe files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({reason[:160]})") from None


def _checked_state(config: ModelConfig, state_dict: dict[Any, Any], path: Path, published: bool) -> dict[str, torch.Tensor]:
    """The state_dict under our names, after checking it against the architecture ``config`` describes.

    The expected names and shapes come from a model built on PyTorch's "meta" device, which allocates
    no parameter memory: a file is refused before its model is built.

    Raises:
        CheckpointError: a missing, unexpected or wrongly shaped parameter, non-finite values, or ERB
            matrices that differ from the filterbank of the config.
    """
    with torch.device("meta"):
        expected = GTCRN(config).state_dict()  # the ERB buffers stay real (CPU) tensors: they are compared
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise CheckpointError(f"{path}: state_dict must map parameter names to tensors")
    renamed = {(_published_to_ours(k) if published else k): v for k, v in state_dict.items()}
    missing = sorted(set(expected) - set(renamed))
    unexpected = sorted(set(renamed) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {unexpected[0][:80]})")
        raise CheckpointError(f"{path}: parameters do not match the GTCRN architecture: {'; '.join(parts)}")
    for key, tensor in renamed.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{path}: {key} has shape {tuple(tensor.shape)}, the model expects {tuple(expected[key].shape)}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: {key} holds non-finite values")
    for key in _FIXED_BUFFERS:
        diff = (renamed[key].float() - expected[key]).abs().max().item()
        if diff > ERB_TOLERANCE:
            raise CheckpointError(f"{path}: {key} differs from the ERB filterbank of its config by {diff:.3g}")
    return renamed


def _build(config: ModelConfig, state_dict: dict[Any, Any], path: Path, published: bool) -> GTCRN:
    """Check ``state_dict`` against ``config`` (see ``_checked_state``), then build and load the model."""
    renamed = _checked_state(config, state_dict, path, published)
    model = GTCRN(config)
    model.load_state_dict(renamed, strict=True)
    return model


def load_model(path: str | os.PathLike[str], expected_sha256: str | None = None) -> GTCRN:
    """Load a GTCRN in eval mode from our checkpoint or a published GTCRN checkpoint.

    Args:
        path: the weights file.
        expected_sha256: if given, the file's sha256 must equal it (bundled weights).

    Raises:
        CheckpointError: missing, truncated, foreign or mismatching file, with the reason.
    """
    path = Path(path)
    if expected_sha256 is not None and path.is_file():
        digest = file_sha256(path)
        if digest != expected_sha256:
            raise CheckpointError(f"{path}: sha256 {digest[:12]}... does not match the expected {expected_sha256[:12]}...")
    data = _read(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(data).__name__}")
    if data.get("format") == CHECKPOINT_FORMAT:
        version = data.get("version")
        if version != CHECKPOINT_VERSION:
            raise CheckpointError(f"{path}: checkpoint version {version!r} is not supported (expected {CHECKPOINT_VERSION})")
        if not isinstance(data.get("state_dict"), dict):
            raise CheckpointError(f"{path}: checkpoint has no state_dict")
        try:
            config = from_dict(ModelConfig, data.get("config"), "config.")
        except ConfigError as exc:
            raise CheckpointError(f"{path}: bad model config: {exc}") from None
        model = _build(config, data["state_dict"], path, published=False)
    elif isinstance(data.get("model"), dict):
        model = _build(ModelConfig(), data["model"], path, published=True)
    else:
        keys = ", ".join(sorted(map(str, data))[:5])
        raise CheckpointError(
            f"{path}: not a GTCRN checkpoint (no 'state_dict' with format {CHECKPOINT_FORMAT!r} and no 'model'; keys: {keys})"
        )
    return model.eval()


def save_checkpoint(model: GTCRN, path: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> None:
    """Write ``model`` as a self-describing checkpoint, atomically (temporary file + rename)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": to_dict(model.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": meta or {},
    }
    atomic_torch_save(payload, Path(path))


def atomic_torch_save(payload: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
