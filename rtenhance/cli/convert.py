"""``rtenhance convert IN.pt OUT.npz``: write a PyTorch checkpoint in the torch-free weights format."""

from __future__ import annotations

import argparse

from rtenhance.cli import UsageError
from rtenhance.weights.convert import convert_checkpoint
from rtenhance.weights.model_weights import TorchMissing


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a PyTorch checkpoint (.pt, .tar) to the torch-free .npz format")
    p.add_argument("input", help="rtenhance or published GTCRN checkpoint")
    p.add_argument("output", help="the .npz file to write (for --weights where PyTorch is not installed)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        weights = convert_checkpoint(args.input, args.output)
    except TorchMissing as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {args.output}: {len(weights.tensors)} tensors, plan of {weights.plan.ints.size} entries "
          f"and {weights.plan.blob.size} weights")
    return 0
