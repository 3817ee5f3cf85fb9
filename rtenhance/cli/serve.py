"""``rtenhance serve``: enhance many live streams sent over WebSocket (protocol: rtenhance.serve.protocol)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from rtenhance.native_build import NativeUnavailable
from rtenhance.serve.config import ServeConfig
from rtenhance.weights import resolve_model

DEFAULTS_HELP = "(default: %(default)s)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = ServeConfig()
    p = sub.add_parser("serve", help="enhance many live streams over WebSocket, one batched step per hop")
    p.add_argument("--host", default=d.host, help=f"address to listen on {DEFAULTS_HELP}")
    p.add_argument("--port", type=int, default=d.port, help=f"TCP port, 0 for any free one {DEFAULTS_HELP}")
    p.add_argument("--weights", help="checkpoint to use (default: the bundled weights)")
    p.add_argument("--max-streams", type=int, default=d.max_streams, help=f"clients served at once {DEFAULTS_HELP}")
    p.add_argument("--max-backlog-hops", type=int, default=d.max_backlog_hops,
                   help=f"hops a client may have waiting before older ones pass through {DEFAULTS_HELP}")
    p.add_argument("--max-unsent", type=float, default=d.max_unsent_s,
                   help=f"seconds of unread output before a client is closed as a slow reader {DEFAULTS_HELP}")
    p.add_argument("--stats-interval", type=float, default=d.stats_interval_s,
                   help=f"seconds between stats lines in the log {DEFAULTS_HELP}")
    p.set_defaults(run=run)


async def _serve(model, config) -> None:
    from rtenhance.serve.server import StreamServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with StreamServer(model, config):
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    try:
        import websockets  # noqa: F401  (only checks that it is installed)
    except ModuleNotFoundError:
        raise ValueError("rtenhance serve needs the websockets package: pip install 'rtenhance[serve]'") from None
    config = ServeConfig(host=args.host, port=args.port, max_streams=args.max_streams,
                         max_backlog_hops=args.max_backlog_hops, max_unsent_s=args.max_unsent,
                         stats_interval_s=args.stats_interval)
    model, _ = resolve_model(args.weights)
    try:
        asyncio.run(_serve(model, config))
    except NativeUnavailable as exc:
        raise ValueError(f"the batched native step is unavailable: {exc}") from exc
    return 0
