"""``python -m forwarder``: the same as ``hotline forwarder run``, settings from the usual
places ($HOTLINE_CONFIG / ./hotline.toml and HOTLINE_* variables). It does not build the whole
``hotline`` command line, so it starts even where other packages' commands cannot load."""

from __future__ import annotations

import argparse
import sys

from hotline.settings import SettingsError, load_settings
from service.commands import CommandError

from .cli import _run


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(settings, argparse.Namespace())
    except CommandError as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
