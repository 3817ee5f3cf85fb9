"""Write the weight average (or ``--raw``: the weights) of a training state as a checkpoint for --weights.

    python scripts/export_average.py runs/ft/last.pt runs/ft/avg_STEP.pt

``best.pt`` is written only at validations; this takes the average at whatever step ``last.pt`` holds
(for scoring a run between validations). The meta records the step and, for fine-tuning runs, init_from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from rtenhance.config import ModelConfig, from_dict  # noqa: E402
from rtenhance.model.checkpoint import save_checkpoint  # noqa: E402
from rtenhance.model.gtcrn import GTCRN  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("state", type=Path, help="a training state (runs/NAME/last.pt)")
    parser.add_argument("out", type=Path, help="the checkpoint to write")
    parser.add_argument("--raw", action="store_true", help="the trained weights instead of their average")
    args = parser.parse_args()
    state = torch.load(args.state, map_location="cpu", weights_only=True)
    model = GTCRN(from_dict(ModelConfig, state["config"]["model"], "model."))
    model.load_state_dict(state["model" if args.raw else "average"])
    meta: dict[str, object] = {"step": state["step"], "wall_seconds": round(float(state["wall_seconds"]), 1)}
    if state["config"].get("init_from"):
        meta["init_from"] = {"path": state["config"]["init_from"], "sha256": state.get("init_sha256", "")}
    save_checkpoint(model, args.out, meta=meta)
    print(f"{args.out}: {'raw weights' if args.raw else 'weight average'} at step {state['step']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
