"""The README is the user's manual: its settings table must name every setting, and its
first lines must give the two commands (DEVELOPERS.md)."""

from __future__ import annotations

import re

from hotline.settings import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_table() -> None:
    documented = set(re.findall(r"^\| `HOTLINE_([A-Z0-9_]+)` \|", README, flags=re.M))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - documented == set(), "settings missing from the README table"
    assert documented - fields == set(), "README documents settings that do not exist"


def test_readme_starts_with_the_two_commands() -> None:
    head = "\n".join(README.splitlines()[:15])
    assert "scripts/quickstart" in head
    assert "scripts/test" in head


def test_the_architecture_table_matches_the_tree() -> None:
    """Issue 9: every room of the tree is in the table once, and every room in the table
    exists."""
    names = re.findall(r"^\| `([a-z_]+)/` \| .* \|$", README, flags=re.M)
    assert len(names) == len(set(names)), "a room stands twice in the architecture table"
    packages = {p.parent.name for p in PROJECT_ROOT.glob("*/__init__.py")}
    assert packages, "no package found: the tree is not where the test looks"
    assert packages - set(names) == set(), "rooms missing from the README's architecture table"
    missing = {name for name in names if not (PROJECT_ROOT / name).is_dir()}
    assert missing == set(), "the README's architecture table names rooms that do not exist"


def test_the_composite_prompts_table_matches_the_catalogue() -> None:
    """Issue 13: what a site records. The composites listed are the catalogue's own."""
    from ivr import prompts

    rows = re.findall(r"^\| `([a-z-]+)` \| ((?:`[a-z-]+`(?: \+ )?)+) \|", README, flags=re.M)
    table = {name: tuple(re.findall(r"`([a-z-]+)`", parts)) for name, parts in rows}
    assert table == {c.id: c.parts for c in prompts.COMPOSITES.values()}
