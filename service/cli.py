"""``hotline``: the one console command. Each package contributes its own subcommands through a
``register(subparsers)`` function listed in ``COMMANDS``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bad_ratings import cli as bad_ratings_cli
from callback_scheduler import cli as callback_cli
from console import cli as console_cli
from forwarder import cli as forwarder_cli
from hotline.settings import SettingsError, load_settings
from http_api import cli as http_cli
from ivr import cli as ivr_cli
from reports import cli as reports_cli
from sandbox import call_cli as sandbox_call_cli
from sandbox import cli as sandbox_cli
from service import serve
from service.commands import CommandError
from storage import cli as storage_cli

#: each adds its subcommands to the parser, in this order in ``hotline --help``
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [  # type: ignore[type-arg]
    serve.register,
    storage_cli.register,
    http_cli.register,
    sandbox_cli.register,
    sandbox_call_cli.register,
    ivr_cli.register,
    forwarder_cli.register,
    callback_cli.register,
    bad_ratings_cli.register,
    reports_cli.register,
    console_cli.register,
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
    for register in COMMANDS:
        register(sub)
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
