"""``hotline bad-rating …`` applies the same checks as the HTTP API (issue 10 Interfaces):
department scope, role, state, and an audit row naming the console user."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.levels import Level
from service.cli import main
from service.commands import with_context
from service.context import AppContext
from storage.audit import list_audit
from tests.conftest import make_settings
from tests.helpers.callbacks import add_call, rate_call


def test_cli_verify_with_scope_role_state_checks_and_audit(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(tmp_path, database_url=database_url)

    async def seed(ctx: AppContext) -> None:
        await add_call(ctx, "CLI-1", department="D1")
        await rate_call(ctx, "CLI-1", Level.DISSATISFIED)

    with_context(settings, seed)
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    base = ["--config", "/dev/null", "bad-rating"]
    as_d2 = ["--actor", "李四", "--role", "department", "--department", "D2"]
    as_d1 = ["--actor", "张三", "--role", "department", "--department", "D1"]
    verify = ["verify", "1", "--finding", "genuine", "--note", "属实"]
    assert main([*base, *verify, *as_d2]) == 1  # another department's item: not found
    assert "no 差评 item 1" in capsys.readouterr().err
    assert main([*base, *verify, "--actor", "x", "--role", "agent"]) == 1  # wrong role
    assert main([*base, "verify", "1", "--finding", "genuine", *as_d1]) == 1  # no explanation
    assert "explain" in capsys.readouterr().err
    assert main([*base, *verify, *as_d1]) == 0
    assert "整改中" in capsys.readouterr().out
    assert main([*base, *verify, *as_d1]) == 1  # wrong state now
    assert main([*base, "show", "1"]) == 0
    shown = capsys.readouterr().out
    assert "verify" in shown and "cli:张三" in shown
    assert main([*base, "list", "--state", "rectifying"]) == 0
    assert "D1" in capsys.readouterr().out

    async def audit(ctx: AppContext) -> list[tuple[str, str]]:
        async with ctx.db.sessions() as s:
            return [(e.actor, e.action) for e in await list_audit(s)]

    assert with_context(settings, audit) == [("system", "bad_rating.open"),
                                             ("cli:张三", "bad_rating.verify")]
