"""Bundle a training run's best weights as rtenhance's default, and snapshot the run for resuming.

    python scripts/bundle_weights.py runs/main [--dev ../shared/data/dev] [--heldout data/heldout] [--dnsmos]
        [--keep-previous NAME] [--no-snapshot | --snapshot-only]

1. Copies RUN_DIR/best.pt (or --checkpoint FILE) to rtenhance/weights/gtcrn_default.pt, converts it to the
   torch-free rtenhance/weights/gtcrn_default.npz (what the package ships and loads), and writes
   rtenhance/weights/manifest.json (both files' sha256, training step and wall time, validation metrics, dev
   and held-out metrics when --dev and --heldout are given, the checkpoint it was fine-tuned from and the
   licence terms). With --keep-previous NAME the weights bundled until now stay selectable as
   ``--weights NAME``; --scores takes the scores from `rtenhance eval --json` files instead of measuring again.
2. Copies RUN_DIR/last.pt and RUN_DIR/train.log to checkpoints/NAME/ (tracked by git) so that a later
   session can continue with ``rtenhance train --resume`` after copying them back into runs/NAME/.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rtenhance.model.checkpoint import file_sha256, load_model  # noqa: E402
from rtenhance.weights import WEIGHTS_DIR  # noqa: E402
from rtenhance.weights.convert import convert_checkpoint  # noqa: E402

BUNDLED_FILE = "gtcrn_default.pt"
RUNTIME_FILE = "gtcrn_default.npz"
SNAPSHOT_DIR = REPO / "checkpoints"
MAX_TRACKED_BYTES = 2 * 1024 * 1024  # keep committed files small


DATA_TERMS = (
    "trained on ../shared/data/train, which includes RAVDESS (CC BY-NC-SA 4.0) and ESC-50 (CC BY-NC 3.0): "
    "non-commercial, research use"
)
GTCRN_ATTRIBUTION = (
    "fine-tuned from the published GTCRN weights {name} (github.com/Xiaobin-Rong/gtcrn, MIT licence, "
    "Copyright (c) 2024 Rong Xiaobin; see LICENSE-GTCRN beside this file)"
)


def licence_terms(init_from: dict[str, str] | None) -> str:
    """The licence note of weights trained on the shared data, fine-tuned from ``init_from`` if given."""
    if not init_from:
        return DATA_TERMS
    return GTCRN_ATTRIBUTION.format(name=Path(init_from["path"]).name) + "; " + DATA_TERMS


def dev_metrics(model, dev: Path, with_dnsmos: bool) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from rtenhance.dnsmos import Dnsmos
    from rtenhance.enhancer import enhance_offline
    from rtenhance.evaluate import evaluate_condition, load_pairs

    pairs = load_pairs(dev / "clean", dev / "noisy")
    result = evaluate_condition(pairs, lambda x: enhance_offline(model, x, causal=True), Dnsmos() if with_dnsmos else None)
    result.pop("groups")
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="the run folder (with best.pt, last.pt, train.log)")
    parser.add_argument("--dev", type=Path, help="a dev folder (clean/, noisy/) to score the weights on")
    parser.add_argument("--heldout", type=Path, help="the second held-out set (scripts/make_heldout_set.py)")
    parser.add_argument("--checkpoint", type=Path, help="the weights to bundle (default: RUN_DIR/best.pt)")
    parser.add_argument(
        "--scores", nargs=2, type=Path, metavar=("DEV_JSON", "HELDOUT_JSON"),
        help="take the dev and held-out scores from `rtenhance eval --json` files (the entry named by the "
        "checkpoint's file stem) instead of measuring them again",
    )
    parser.add_argument("--dnsmos", action="store_true", help="include DNSMOS in the dev scores (slow)")
    parser.add_argument("--keep-previous", metavar="NAME", help="keep the weights bundled until now as --weights NAME")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--no-snapshot", action="store_true", help="do not copy last.pt/train.log to checkpoints/")
    mode.add_argument("--snapshot-only", action="store_true", help="only copy the run to checkpoints/")
    args = parser.parse_args()
    if not args.snapshot_only:
        sets = {"dev": args.dev, "heldout": args.heldout}
        bundle(args.run_dir, args.checkpoint or args.run_dir / "best.pt", sets, args.scores, args.dnsmos, args.keep_previous)
    if not args.no_snapshot:
        snapshot(args.run_dir)
    return 0


def training_devices(log: Path) -> list[str]:
    """The devices the run's training sessions used (``device=`` of each ``start`` line), in order of use."""
    devices = re.findall(r" start step=\d+ device=(\S+)", log.read_text()) if log.is_file() else []
    return list(dict.fromkeys(devices))


def keep_previous(name: str) -> dict[str, object]:
    """Move the bundled default to gtcrn_NAME.pt (and .npz); returns its manifest entry for ``candidates``."""
    previous = json.loads((WEIGHTS_DIR / "manifest.json").read_text())
    candidates = previous.pop("candidates", {})
    kept = f"gtcrn_{name}.pt"
    shutil.copyfile(WEIGHTS_DIR / previous["file"], WEIGHTS_DIR / kept)
    previous["file"] = kept
    if "runtime_file" in previous:
        kept_runtime = f"gtcrn_{name}.npz"
        shutil.copyfile(WEIGHTS_DIR / previous["runtime_file"], WEIGHTS_DIR / kept_runtime)
        previous["runtime_file"] = kept_runtime
    previous.setdefault("licence", DATA_TERMS)
    return {**candidates, name: previous}


def recorded_scores(path: Path, name: str) -> dict[str, object]:
    """The summary of condition ``name`` in an ``rtenhance eval --json`` file, without its groups."""
    result = json.loads(path.read_text())[name]
    result.pop("groups", None)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}


def bundle(
    run_dir: Path,
    best: Path,
    sets: dict[str, Path | None],
    scores: list[Path] | None,
    with_dnsmos: bool,
    previous_name: str | None,
) -> None:
    """Copy the checkpoint ``best`` of run ``run_dir`` into the package and write its manifest."""
    import torch

    torch.set_num_threads(1)
    model = load_model(best)
    meta = torch.load(best, map_location="cpu", weights_only=True).get("meta", {})
    candidates = keep_previous(previous_name) if previous_name else {}
    target = WEIGHTS_DIR / BUNDLED_FILE
    shutil.copyfile(best, target)
    convert_checkpoint(target, WEIGHTS_DIR / RUNTIME_FILE)
    manifest: dict[str, object] = {
        "file": BUNDLED_FILE,
        "sha256": file_sha256(target),
        "runtime_file": RUNTIME_FILE,
        "runtime_sha256": file_sha256(WEIGHTS_DIR / RUNTIME_FILE),
        "run": run_dir.name,
        "step": meta.get("step"),
        "wall_seconds": meta.get("wall_seconds"),
        "val": meta.get("val"),
        "trained_on": training_devices(run_dir / "train.log"),
        "init_from": meta.get("init_from"),
        "licence": licence_terms(meta.get("init_from")),
    }
    for (key, folder), recorded in zip(sets.items(), scores or [None, None]):
        if recorded:
            manifest[key] = recorded_scores(recorded, best.stem)
        elif folder:
            manifest[key] = dev_metrics(model, folder, with_dnsmos)
    if candidates:
        manifest["candidates"] = candidates
    (WEIGHTS_DIR / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))


def snapshot(run_dir: Path) -> None:
    """Copy the run's last.pt, best.pt and train.log to checkpoints/NAME/ (small files only)."""
    folder = SNAPSHOT_DIR / run_dir.name
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("last.pt", "train.log", "best.pt"):
        source = run_dir / name
        if source.stat().st_size > MAX_TRACKED_BYTES:
            print(f"skipping {source}: larger than {MAX_TRACKED_BYTES} bytes", file=sys.stderr)
            continue
        shutil.copyfile(source, folder / name)
    print(
        f"snapshot in {folder}; resume with: mkdir -p runs/{run_dir.name} && cp {folder}/* runs/{run_dir.name}/ && "
        "rtenhance train --config config/train.yaml --resume"
    )


if __name__ == "__main__":
    raise SystemExit(main())
