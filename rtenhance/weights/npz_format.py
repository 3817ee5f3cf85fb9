"""The torch-free weights file: an uncompressed NumPy ``.npz`` that never runs code when read.

Members (all plain arrays, read with ``allow_pickle=False``):
- ``meta.json``: uint8 bytes of a JSON object: ``format``, ``version``, the model ``config``, the plan's
  ``state_shapes``, ``state_offsets`` and ``state_floats``, the ``profile`` figures, and free-form ``source``
  (where the weights came from);
- ``state/NAME``: each parameter and buffer of ``GTCRN.state_dict`` (float32);
- ``plan/ints``, ``plan/blob``: the native step's plan and folded weights (``backends.native.plan_format``).

Reading is bounded: the file size, every member's size and the JSON's size are capped, members must be
stored uncompressed (no decompression bombs), the config is validated and the plan checked against it.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from rtenhance.backends.native.plan_format import Plan, PlanError, check_plan
from rtenhance.config import ConfigError, ModelConfig, from_dict, to_dict
from rtenhance.weights.errors import CheckpointError
from rtenhance.weights.model_weights import ModelWeights

NPZ_FORMAT = "rtenhance-gtcrn-npz"
NPZ_VERSION = 1
NPZ_SUFFIX = ".npz"
META = "meta.json"
STATE_PREFIX = "state/"
PLAN_INTS, PLAN_BLOB = "plan/ints", "plan/blob"
MAX_FILE_BYTES = 64 << 20  # a GTCRN's weights are about 0.5 MB
MAX_META_BYTES = 1 << 20


class WeightsFileError(CheckpointError):
    """A weights file cannot be used; the message names the file and what is wrong."""


def save_npz(weights: ModelWeights, path: str | os.PathLike[str], source: dict[str, Any] | None = None) -> None:
    """Write ``weights`` to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    path = Path(path)
    plan = weights.plan
    meta = {"format": NPZ_FORMAT, "version": NPZ_VERSION, "config": to_dict(weights.config),
            "state_shapes": {k: list(v) for k, v in plan.state_shapes.items()}, "state_offsets": plan.state_offsets,
            "state_floats": plan.state_floats, "profile": weights.profile, "source": source or {}}
    members: dict[str, np.ndarray] = {META: np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)}
    members.update({STATE_PREFIX + k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.tensors.items()})
    members[PLAN_INTS], members[PLAN_BLOB] = plan.ints, plan.blob
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _members(path: Path) -> dict[str, np.ndarray]:
    """Every member of the archive as an array, after the size and compression checks."""
    if not path.is_file():
        raise WeightsFileError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise WeightsFileError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MB, not a GTCRN weights file")
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED or info.file_size > MAX_FILE_BYTES:
                    raise WeightsFileError(f"{path}: member {info.filename!r} is compressed or too large")
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except WeightsFileError:
        raise
    except Exception as exc:  # zipfile and numpy raise many kinds for truncated or foreign files
        raise WeightsFileError(f"{path}: not a readable .npz weights file ({str(exc)[:160] or type(exc).__name__})") from None


def load_npz(path: str | os.PathLike[str]) -> ModelWeights:
    """Read a weights file written by ``save_npz``.

    Raises:
        WeightsFileError: missing, truncated, foreign, oversized or inconsistent file, with the reason.
    """
    path = Path(path)
    members = _members(path)
    raw = members.get(META)
    if raw is None or raw.dtype != np.uint8 or raw.size > MAX_META_BYTES:
        raise WeightsFileError(f"{path}: no {META} member; not an rtenhance weights file")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except ValueError as exc:
        raise WeightsFileError(f"{path}: {META} is not JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != NPZ_FORMAT:
        raise WeightsFileError(f"{path}: not an rtenhance weights file (format is not {NPZ_FORMAT!r})")
    if meta.get("version") != NPZ_VERSION:
        raise WeightsFileError(f"{path}: weights file version {meta.get('version')!r} is not supported (expected {NPZ_VERSION})")
    try:
        config = from_dict(ModelConfig, meta.get("config"), "config.")
    except ConfigError as exc:
        raise WeightsFileError(f"{path}: bad model config: {exc}") from None
    tensors = {k[len(STATE_PREFIX):]: v for k, v in members.items() if k.startswith(STATE_PREFIX)}
    if not tensors or any(v.dtype != np.float32 or not np.isfinite(v).all() for v in tensors.values()):
        raise WeightsFileError(f"{path}: the weights are missing, not float32, or not finite")
    if PLAN_INTS not in members or PLAN_BLOB not in members:
        raise WeightsFileError(f"{path}: no native plan; write the file again with `rtenhance convert`")
    try:
        plan = Plan(members[PLAN_INTS], members[PLAN_BLOB],
                    {k: tuple(v) for k, v in dict(meta["state_shapes"]).items()},
                    dict(meta["state_offsets"]), int(meta["state_floats"]))
        check_plan(plan, config)
    except PlanError as exc:
        raise WeightsFileError(f"{path}: {exc}; write the file again with `rtenhance convert`") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsFileError(f"{path}: bad plan description in {META} ({exc})") from None
    profile = meta.get("profile")
    return ModelWeights(config, tensors, plan, profile if isinstance(profile, dict) else {})
