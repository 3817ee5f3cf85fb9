"""``rtenhance service install``: the systemd user unit, set up to run this installation."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from rtenhance.cli import UsageError
from rtenhance.runtime_config import DEFAULT_CONFIG_FILE

UNIT_TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "rtenhance.service"
UNIT_NAME = "rtenhance.service"
TEMPLATE_EXEC = "ExecStart=/usr/bin/env rtenhance run"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("service", help="install the systemd user service")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    install = actions.add_parser("install", help="write ~/.config/systemd/user/rtenhance.service")
    install.add_argument("--force", action="store_true", help="overwrite an existing unit")
    install.set_defaults(run=run)


def user_config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def render_unit() -> str:
    """The shipped unit with ExecStart pointing at this Python and this package."""
    text = UNIT_TEMPLATE.read_text()
    if TEMPLATE_EXEC not in text:
        raise UsageError(f"{UNIT_TEMPLATE}: expected the line {TEMPLATE_EXEC!r}")
    return text.replace(TEMPLATE_EXEC, f"ExecStart={shlex.quote(sys.executable)} -m rtenhance run")


def run(args: argparse.Namespace) -> int:
    unit_dir = user_config_home() / "systemd" / "user"
    unit = unit_dir / UNIT_NAME
    if unit.exists() and not args.force:
        raise UsageError(f"{unit} exists; pass --force to overwrite it")
    unit_dir.mkdir(parents=True, exist_ok=True)
    unit.write_text(render_unit())
    print(f"wrote {unit}")
    config = user_config_home() / "rtenhance" / "config.yaml"
    if not config.exists():
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(DEFAULT_CONFIG_FILE.read_text())
        print(f"wrote {config} (the documented defaults; set audio.input/audio.output there)")
    print("enable and start it with:")
    print("  systemctl --user daemon-reload && systemctl --user enable --now rtenhance")
    print("logs: journalctl --user -u rtenhance -f    reload the config: systemctl --user reload rtenhance")
    return 0
