"""``rtenhance profile``: parameters and MMAC/s per layer, beside the cost without grouping."""

from __future__ import annotations

import argparse
import json

from typing import Any

from rtenhance.cli import UsageError
from rtenhance.weights import NoWeightsError, resolve_model
from rtenhance.weights.model_weights import TorchMissing, require_torch


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="parameters and compute of the model, per layer")
    p.add_argument("--weights", help="checkpoint whose architecture to profile; default: bundled, else the default config")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(run=run)


def _profile(weights: str | None) -> tuple[dict[str, Any], str]:
    """(the profile: ``totals`` plus ``layers``, the model's name). The figures are counted with PyTorch
    when a weights file is converted (``ModelWeights.profile``), so a torch-free install reads them."""
    try:
        model, name = resolve_model(weights)
        if model.profile:
            return model.profile, name
    except NoWeightsError:
        name = "default architecture (no weights)"
    try:
        require_torch("profiling a model without a stored profile")
    except TorchMissing as exc:
        raise UsageError(str(exc)) from None
    from rtenhance.model.gtcrn import GTCRN
    from rtenhance.weights.model_weights import ModelWeights

    return ModelWeights.from_model(GTCRN().eval()).profile, name


def run(args: argparse.Namespace) -> int:
    profile, name = _profile(args.weights)
    total = {k: v for k, v in profile.items() if k != "layers"}
    if args.json:
        print(json.dumps({**total, "model": name, "layers": profile["layers"]}, indent=2))
        return 0
    print(f"GTCRN profile ({name}); 'dense' = the same layer without grouped convolutions or grouped GRUs")
    print(f"{'layer':<22}{'params':>9}{'dense':>9}{'MMAC/s':>9}{'dense':>9}{'saving':>8}")
    for c in profile["layers"]:
        params = c["params"] + c["fixed_params"]
        dense = c["params_dense"] + c["fixed_params"]
        mmac, mmac_dense = c["mmac_per_second"], c["mmac_per_second_dense"]
        saving = 1 - mmac / mmac_dense if mmac_dense else 0.0
        print(f"{c['name']:<22}{params:>9}{dense:>9}{mmac:>9.2f}{mmac_dense:>9.2f}{saving:>8.0%}")
    print(
        f"{'total':<22}{total['params_total']:>9}{total['params_dense']:>9}"
        f"{total['mmac_per_second']:>9.2f}{total['mmac_per_second_dense']:>9.2f}"
        f"{1 - total['mmac_per_second'] / total['mmac_per_second_dense']:>8.0%}"
    )
    print(f"trainable parameters: {total['params_trainable']}; with the fixed ERB matrices: {total['params_total']}")
    return 0
