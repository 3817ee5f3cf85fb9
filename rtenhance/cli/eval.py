"""``rtenhance eval``: WB-PESQ, STOI, SI-SDR and DNSMOS of the noisy input and of each model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from rtenhance.cli import UsageError

if TYPE_CHECKING:
    from rtenhance.evaluate import Pair
    from rtenhance.model.gtcrn import GTCRN

PLOT_FILES = 3  # files plotted with --plot


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="score enhancement on paired clean/noisy folders",
        description="Mean WB-PESQ, STOI, SI-SDR and DNSMOS SIG/BAK/OVRL of the noisy input and of each model, "
        "overall and per subset/SNR where the clean folder's manifest.tsv gives them.",
    )
    p.add_argument("--clean", required=True, help="folder of clean references")
    p.add_argument("--noisy", required=True, help="folder of noisy files (same names as --clean)")
    p.add_argument(
        "--weights", action="append", default=[], metavar="PATH",
        help="a checkpoint to evaluate, or the name of bundled weights (repeatable; files are named by their stem); "
        "default: every bundled candidate, the default first",
    )
    p.add_argument("--streaming", action="store_true", help="run models frame by frame (the real-time path)")
    p.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS (the slowest metric)")
    p.add_argument("--no-noisy", action="store_true", help="score only the models, not the noisy input")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--plot", metavar="DIR", help=f"write noisy/enhanced spectrogram PNGs of {PLOT_FILES} files")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N files (by name)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for the models and DNSMOS (default: %(default)s)")
    p.set_defaults(run=run)


def _models(weights: list[str]) -> dict[str, "GTCRN"]:
    from rtenhance.weights import bundled_candidates, resolve_model

    named = bundled_candidates()
    if not weights:
        if not named:
            resolve_model(None)  # raises NoWeightsError with its message
        weights = list(named)
    models: dict[str, GTCRN] = {}
    for path in weights:
        name = path if path in named and not Path(path).exists() else Path(path).stem
        if name in models or name == "noisy":
            raise UsageError(f"--weights {path}: the name {name!r} is taken; rename the file")
        models[name] = resolve_model(path)[0].torch_model()
    return models


def _enhance_fn(model: "GTCRN", streaming: bool) -> Callable[[np.ndarray], np.ndarray]:
    from rtenhance.backends import make_stepper
    from rtenhance.enhancer import Enhancer, enhance_offline

    if streaming:
        enhancer = Enhancer(make_stepper(model), model.config.stft)
        return enhancer.enhance
    return lambda x: enhance_offline(model, x, causal=True)


def _plotter(folder: Path, name: str, files: set[str]) -> Callable[["Pair", np.ndarray], None]:
    """A ``keep`` callback writing FOLDER/<file stem>_<name>.png for the pairs named in ``files``."""
    from rtenhance.metrics import METRIC_RATE
    from rtenhance.plots import plot_pair

    def keep(pair: "Pair", estimate: np.ndarray) -> None:
        if pair.name in files:
            out = folder / f"{Path(pair.name).stem}_{name}.png"
            plot_pair(pair.noisy, estimate, METRIC_RATE, f"{pair.name} ({name})", out)

    return keep


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from rtenhance.dnsmos import Dnsmos
    from rtenhance.evaluate import NOISY, evaluate_condition, format_table, load_pairs

    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    torch.set_num_threads(max(1, args.threads))
    models = _models(args.weights)
    pairs = load_pairs(args.clean, args.noisy, args.limit)
    dnsmos = None if args.no_dnsmos else Dnsmos(threads=max(1, args.threads))
    plotted = {p.name for p in pairs[:PLOT_FILES]}

    results: dict[str, dict[str, object]] = {}
    conditions = ([] if args.no_noisy else [(NOISY, None)]) + [(name, _enhance_fn(m, args.streaming)) for name, m in models.items()]
    for name, enhance in conditions:
        keep = _plotter(Path(args.plot), name, plotted) if args.plot and enhance is not None else None
        bar = lambda it, name=name: tqdm(it, total=len(pairs), desc=name, unit="file", leave=False)  # noqa: E731
        results[name] = evaluate_condition(pairs, enhance, dnsmos, progress=bar, keep=keep)

    print(format_table(results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, default=_json_default) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        print(f"spectrograms in {args.plot}")
    return 0


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
