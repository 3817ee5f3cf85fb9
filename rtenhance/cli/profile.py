"""``rtenhance profile``: parameters and MMAC/s per layer, beside the cost without grouping."""

from __future__ import annotations

import argparse
import json

from rtenhance.model.gtcrn import GTCRN
from rtenhance.model.profile import profile_model, totals
from rtenhance.weights import NoWeightsError, resolve_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="parameters and compute of the model, per layer")
    p.add_argument("--weights", help="checkpoint whose architecture to profile; default: bundled, else the default config")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        model, name = resolve_model(args.weights)
    except NoWeightsError:
        model, name = GTCRN().eval(), "default architecture (no weights)"
    costs = profile_model(model)
    total = totals(costs)
    if args.json:
        layers = [
            {
                "name": c.name,
                "params": c.params,
                "fixed_params": c.fixed_params,
                "params_dense": c.dense_params,
                "mmac_per_second": c.macs_per_second / 1e6,
                "mmac_per_second_dense": c.dense_macs_per_second / 1e6,
            }
            for c in costs
        ]
        print(json.dumps({**total, "model": name, "layers": layers}, indent=2))
        return 0
    print(f"GTCRN profile ({name}); 'dense' = the same layer without grouped convolutions or grouped GRUs")
    print(f"{'layer':<22}{'params':>9}{'dense':>9}{'MMAC/s':>9}{'dense':>9}{'saving':>8}")
    for c in costs:
        params = c.params + c.fixed_params
        dense = c.dense_params + c.fixed_params
        saving = 1 - c.macs_per_second / c.dense_macs_per_second if c.dense_macs_per_second else 0.0
        print(
            f"{c.name:<22}{params:>9}{dense:>9}{c.macs_per_second / 1e6:>9.2f}"
            f"{c.dense_macs_per_second / 1e6:>9.2f}{saving:>8.0%}"
        )
    print(
        f"{'total':<22}{total['params_total']:>9}{total['params_dense']:>9}"
        f"{total['mmac_per_second']:>9.2f}{total['mmac_per_second_dense']:>9.2f}"
        f"{1 - total['mmac_per_second'] / total['mmac_per_second_dense']:>8.0%}"
    )
    print(f"trainable parameters: {total['params_trainable']}; with the fixed ERB matrices: {total['params_total']}")
    return 0
