"""``rtenhance train``: train GTCRN weights from a YAML config, resumable."""

from __future__ import annotations

import argparse
import signal
import threading

from rtenhance.cli import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train GTCRN weights (on-the-fly mixing, resumable)",
        description="Train GTCRN weights. Checkpoints, best weights and train.log go to runs_dir/name.",
    )
    p.add_argument("--config", default="config/train.yaml", help="training YAML (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the run from its last.pt")
    p.add_argument(
        "--init-from", metavar="PATH",
        help="fine-tune: start from the weights of this rtenhance or published GTCRN checkpoint "
        "(fresh optimizer and learning-rate warm-up; use its own --set name=...)",
    )
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set batch_size=8 (repeatable)",
    )
    p.add_argument("--max-steps", type=int, default=None, help="stop at this step (default: max_steps of the config)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rtenhance.train.config import load_train_config
    from rtenhance.train.loop import Trainer

    if args.init_from and args.resume:
        raise UsageError("--resume continues a run from its last.pt, which records where it started; drop --init-from")
    overrides = args.overrides + ([f"init_from={args.init_from}"] if args.init_from else [])
    cfg = load_train_config(args.config, overrides)
    last = cfg.run_dir / "last.pt"
    if not args.resume and last.exists():
        raise UsageError(f"{last} exists: pass --resume to continue that run, or choose another name (--set name=...)")
    trainer = Trainer(cfg)  # InitError, CorpusError, ConfigError: ValueErrors the CLI prints as one line
    if args.resume:
        trainer.resume()
    stop = threading.Event()
    # SIGTERM/SIGINT: finish the current step, write last.pt, exit
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        trainer.run(max_steps=args.max_steps, progress=not args.no_progress, stop=stop.is_set)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        trainer.dist.stop()
    if not trainer.dist.is_main:  # under torchrun rank 0 alone reports
        return 0
    print(f"stopped at step {trainer.step}; best {cfg.best_metric} {trainer.best_metric:.4f} at step {trainer.best_step}")
    print(f"checkpoints: {last} and {cfg.run_dir / 'best.pt'}")
    return 0
