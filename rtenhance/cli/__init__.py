"""Command line: the only place that prints or exits.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args) -> int``.
``rtenhance --input mic --output speakers`` (no subcommand) is the same as ``rtenhance run ...``.
Library errors (``UsageError`` and the specific ``ValueError``s the library raises) print one line and
exit 2; nothing prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from rtenhance import __version__
from rtenhance.cli.log_setup import SD_ERR, configure_logging, writes_to_journal

EXIT_USAGE = 2
EXTRA_OF_MODULE = {"torch": "train", "tqdm": "train", "pesq": "train", "pystoi": "train", "speechmos": "train",
                   "matplotlib": "train", "onnx": "onnx", "onnxruntime": "onnx"}  # optional imports -> extra

# subcommand name -> module implementing it
COMMAND_MODULES = {
    "enhance": "rtenhance.cli.enhance",
    "profile": "rtenhance.cli.profile",
    "demo": "rtenhance.cli.demo",
    "train": "rtenhance.cli.train",
    "eval": "rtenhance.cli.eval",
    "run": "rtenhance.cli.run",
    "devices": "rtenhance.cli.devices",
    "service": "rtenhance.cli.service",
    "serve": "rtenhance.cli.serve",
    "convert": "rtenhance.cli.convert",
}
DEFAULT_COMMAND = "run"


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def _command_modules() -> dict[str, ModuleType]:
    """The command modules present in this build (a registered module that is not installed is skipped)."""
    modules = {}
    for name, path in COMMAND_MODULES.items():
        try:
            modules[name] = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name != path:
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtenhance",
                                     description=f"Real-time speech enhancement with GTCRN (rtenhance {__version__}).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"rtenhance {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules().values():
        module.add_parser(sub)
    return parser


def _error(line: str) -> None:
    """Print the one error line to stderr (as an error for the journal when stderr is the journal)."""
    print(f"<{SD_ERR}>{line}" if writes_to_journal(sys.stderr) else line, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rtenhance`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    known = set(COMMAND_MODULES) | {"-h", "--help", "--version"}
    if argv and argv[0] not in known and argv[0].startswith("-") and DEFAULT_COMMAND in COMMAND_MODULES:
        if argv[0] not in ("-v", "--verbose"):
            argv.insert(0, DEFAULT_COMMAND)
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args) or 0)
    except (UsageError, ValueError, OSError) as exc:
        _error(f"rtenhance {args.command}: error: {exc}")
        return EXIT_USAGE
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF_MODULE.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        _error(f"rtenhance {args.command}: error: needs the {exc.name} package, which is not installed "
               f"(pip install 'rtenhance[{extra}]')")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
