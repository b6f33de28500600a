"""``hotline prompts ...`` and ``hotline default-ratings``."""

from __future__ import annotations

import argparse
import asyncio
import sys

from hotline.settings import Settings
from ivr import prompts
from service.context import AppContext


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pr = sub.add_parser("prompts", help="the survey's Chinese voice prompts")
    prsub = pr.add_subparsers(dest="prompts_command", metavar="ACTION", required=True)
    build = prsub.add_parser(
        "build", help="render missing or changed prompts with espeak-ng and sox, and join "
        "the menus of several prompts into one file each (studio recordings a site dropped in "
        "are kept, and flow into those menus)",
    )
    build.add_argument("--force", action="store_true",
                       help="re-render every generated prompt, even unchanged ones")
    build.set_defaults(handler=_build)
    check = prsub.add_parser("check", help="exit 1 if a prompt file is missing")
    check.set_defaults(handler=_check)
    lst = prsub.add_parser("list", help="every prompt: id, state, text")
    lst.set_defaults(handler=_list)

    dr = sub.add_parser(
        "default-ratings",
        help="run one pass of the default-rating job now (not-rated calls past the window)",
    )
    dr.set_defaults(handler=_default_ratings)


def _build(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.progress import Progress
    from service.commands import CommandError

    progress = Progress("prompts", stream=sys.stdout)
    progress.total = len(prompts.catalogue(settings))
    try:
        report = prompts.build_prompts(settings, force=args.force,
                                       progress=lambda n, _t, pid: progress.step(n, pid))
    except prompts.PromptBuildError as exc:
        raise CommandError(str(exc)) from exc
    print(f"prompts in {settings.effective_prompts_dir}")
    print(f"  generated: {len(report.generated)}  unchanged: {len(report.unchanged)}  "
          f"site recordings kept: {len(report.kept_site)}")
    for pid in report.kept_site:
        print(f"  kept site recording: {pid}")
    for pid in report.retired:
        print(f"  removed the generated {pid}.wav: the site's recording of it replaces it")
    return 0


def _check(settings: Settings, args: argparse.Namespace) -> int:
    missing = prompts.missing_prompts(settings)
    for pid in missing:
        print(f"missing: {pid}")
    stale = [s.prompt_id for s in prompts.inspect(settings) if s.state == "stale"]
    for pid in stale:
        print(f"stale (text, voice or a part changed; run `hotline prompts build`): {pid}")
    if not missing:
        print(f"all {len(prompts.catalogue(settings))} prompts present in "
              f"{settings.effective_prompts_dir}")
    return 1 if missing else 0


def _list(settings: Settings, args: argparse.Namespace) -> int:
    for state in prompts.inspect(settings):
        print(f"{prompts.sound_name(state.prompt_id):32} {state.state:9} {state.text}")
    return 0


def _default_ratings(settings: Settings, args: argparse.Namespace) -> int:
    from ivr import defaults

    async def _once() -> defaults.PassReport:
        ctx = AppContext.create(settings)
        try:
            return await defaults.run_once(ctx)
        finally:
            await ctx.close()

    report = asyncio.run(_once())
    print(f"stale calls marked not rated: {report.stale}; default ratings made: "
          f"{report.defaulted}")
    return 0
