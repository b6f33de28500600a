"""``hotline``: the one console command. Each package contributes its own subcommands through a
``register(subparsers)`` function listed in ``COMMAND_MODULES``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from hotline.commands import CommandError
from hotline.settings import SettingsError, load_settings

COMMAND_MODULES = [
    "hotline.service",
    "hotline.calendar_cli",
    "storage.cli",
    "http_api.cli",
    "sandbox.cli",
    "sandbox.call_cli",
    "ivr.cli",
    "forwarder.cli",
    "callback_scheduler.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotline",
        description="12345 hotline 好差评 telephone rating service",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings file (TOML); default $HOTLINE_CONFIG or ./hotline.toml",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    try:
        result = args.handler(settings, args)
    except KeyboardInterrupt:
        return 130
    except CommandError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
