"""``hotline asterisk build|start|stop|status|cli "..."``: the sandboxed Asterisk 22."""

from __future__ import annotations

import argparse
import sys

from hotline.settings import Settings
from sandbox.instance import AsteriskSandbox
from sandbox.root import SandboxError, build_root
from service.commands import CommandError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("asterisk", help="the sandboxed Asterisk 22 (build, start, stop, CLI)")
    actions = p.add_subparsers(dest="asterisk_command", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="build the Asterisk root (mmdebstrap; needs root)")
    build.add_argument("--force", action="store_true", help="rebuild even if complete")
    build.set_defaults(handler=_build)
    actions.add_parser("start", help="start Asterisk in the background").set_defaults(
        handler=_start)
    actions.add_parser("stop", help="stop Asterisk").set_defaults(handler=_stop)
    actions.add_parser("status", help="say whether Asterisk runs").set_defaults(handler=_status)
    cli = actions.add_parser("cli", help='run one Asterisk CLI command, e.g. "core show channels"')
    cli.add_argument("words", nargs="+", help="the command (quoted or as separate words)")
    cli.set_defaults(handler=_cli)


def _build(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.progress import Progress
    from sandbox.root import PACKAGES, is_complete

    progress = Progress("asterisk build", stream=sys.stdout)
    try:
        if is_complete(settings.asterisk_root, PACKAGES) and not args.force:
            root = build_root(settings.asterisk_root, force=args.force)
        else:  # minutes of mmdebstrap: show that it is alive
            with progress.ticking(f"building the Debian sid root at {settings.asterisk_root}"):
                root = build_root(settings.asterisk_root, force=args.force)
    except SandboxError as exc:
        raise CommandError(str(exc)) from exc
    print(f"Asterisk root ready at {root}")
    return 0


def _start(settings: Settings, args: argparse.Namespace) -> int:
    sandbox = AsteriskSandbox.from_settings(settings)
    try:
        sandbox.ensure_built()
        sandbox.start()
    except SandboxError as exc:
        raise CommandError(str(exc)) from exc
    print(f"Asterisk running (pid {sandbox.pid()}, run dir {sandbox.run_dir}, "
          f"AMI 127.0.0.1:{sandbox.ami_port}, SIP udp 127.0.0.1:{sandbox.sip_port})")
    return 0


def _stop(settings: Settings, args: argparse.Namespace) -> int:
    sandbox = AsteriskSandbox.from_settings(settings)
    was_running = sandbox.is_running()
    try:
        sandbox.stop()
    except SandboxError as exc:
        raise CommandError(str(exc)) from exc
    print("Asterisk stopped" if was_running else "Asterisk was not running")
    return 0


def _status(settings: Settings, args: argparse.Namespace) -> int:
    sandbox = AsteriskSandbox.from_settings(settings)
    pid = sandbox.pid()
    print(f"Asterisk running (pid {pid})" if pid else "Asterisk not running")
    return 0 if pid else 3


def _cli(settings: Settings, args: argparse.Namespace) -> int:
    sandbox = AsteriskSandbox.from_settings(settings)
    if not sandbox.is_running():
        raise CommandError("Asterisk is not running (hotline asterisk start)")
    try:
        print(sandbox.cli(" ".join(args.words)), end="")
    except SandboxError as exc:
        raise CommandError(str(exc)) from exc
    return 0
