"""``rtenhance run`` (also plain ``rtenhance --input X --output Y``): the real-time daemon."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace

from rtenhance.runtime_config import RuntimeConfig, load_runtime_config

log = logging.getLogger("rtenhance")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="enhance live audio: microphone -> speakers, a virtual microphone or a file",
        description="Enhance live audio in real time. Without options it reads the configuration "
        "(--config, ~/.config/rtenhance/config.yaml, /etc/rtenhance/config.yaml, built-in defaults).",
    )
    p.add_argument("-i", "--input", help="mic, a device index or name, pulse:SOURCE, or file:PATH")
    p.add_argument("-o", "--output", help="speakers, a device index or name, pulse:SINK, file:PATH, or virtual-mic")
    p.add_argument("--weights", metavar="PATH", help="checkpoint (rtenhance or published GTCRN); default: bundled")
    p.add_argument("--config", metavar="PATH", help="configuration file (see config/rtenhance.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration key, e.g. --set latency.target_ms=80 (repeatable)")
    p.add_argument("--stats-json", metavar="PATH", help="append one JSON object of stats per interval to PATH")
    p.add_argument("--fast", action="store_true", help="read a file: input as fast as possible (file: output only)")
    p.add_argument("--backend", help="inference backend (default from the configuration: auto)")
    p.set_defaults(run=run)


def _with_options(cfg: RuntimeConfig, args: argparse.Namespace) -> RuntimeConfig:
    """The configuration with the command-line options applied (they win over the file and --set)."""
    audio = replace(cfg.audio, **{k: v for k, v in (("input", args.input), ("output", args.output)) if v})
    engine = replace(cfg.engine, **{k: v for k, v in (("weights", args.weights), ("backend", args.backend)) if v})
    stats = replace(cfg.stats, json_path=args.stats_json) if args.stats_json else cfg.stats
    return replace(cfg, audio=audio, engine=engine, stats=stats)


def run(args: argparse.Namespace) -> int:
    def load() -> RuntimeConfig:
        cfg, source = load_runtime_config(args.config, args.set)
        log.debug("configuration: %s", source or "built-in defaults")
        return _with_options(cfg, args)

    load()  # validate before any device or model is touched (or PyTorch imported)
    from rtenhance.daemon import Daemon

    status = Daemon(load, fast=args.fast).run()
    # Everything is closed and written; skip the interpreter's teardown, which with PyTorch loaded takes
    # 0.2-2 s on a busy machine, so that a stop signal ends the process within a second.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
