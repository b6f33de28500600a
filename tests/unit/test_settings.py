"""The typed settings object: TOML file, HOTLINE_* environment, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.settings import SettingsError, load_settings


def test_defaults_are_the_embedded_sqlite_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path))
    s = load_settings(Path("/dev/null"))
    assert s.effective_database_url == f"sqlite+aiosqlite:///{tmp_path}/hotline.db"
    assert (s.fastagi_host, s.fastagi_port) == ("127.0.0.1", 4573)
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8080)
    assert s.timezone == "Asia/Shanghai"
    assert (s.default_rating_window, s.default_rating_window_unit) == (7, "natural_days")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "hotline.toml"
    cfg.write_text(
        "http_port = 9000\nfastagi_port = 4600\n"
        'keypad_map = {"1" = 5, "2" = 4, "3" = 3, "4" = 2, "5" = 1}\n'
    )
    monkeypatch.setenv("HOTLINE_HTTP_PORT", "9100")
    s = load_settings(cfg)
    assert s.http_port == 9100
    assert s.fastagi_port == 4600
    assert s.keypad_map["1"] == 5


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text('ami_username = "site-ami"\n')
    monkeypatch.setenv("HOTLINE_CONFIG", str(cfg))
    assert load_settings().ami_username == "site-ami"


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("HOTLINE_FASTAGI_PORT", "99999", "HOTLINE_FASTAGI_PORT"),
        ("HOTLINE_HTTP_PORT", "eighty", "HOTLINE_HTTP_PORT"),
        ("HOTLINE_TIMEZONE", "Mars/Olympus", "HOTLINE_TIMEZONE"),
        ("HOTLINE_DATABASE_URL", "postgresql://x/y", "HOTLINE_DATABASE_URL"),
        ("HOTLINE_KEYPAD_MAP", '{"1": 1, "2": 1, "3": 3, "4": 4, "5": 5}', "HOTLINE_KEYPAD_MAP"),
        ("HOTLINE_DEFAULT_RATING_WINDOW_UNIT", "fortnights", "HOTLINE_DEFAULT_RATING_WINDOW_UNIT"),
    ],
)
def test_bad_setting_fails_with_its_name(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as err:
        load_settings(Path("/dev/null"))
    assert named in str(err.value)


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "hotline.toml"
    cfg.write_text("htp_port = 1\n")
    with pytest.raises(SettingsError, match="htp_port"):
        load_settings(cfg)


def test_broken_toml_and_missing_file_are_clear(tmp_path: Path) -> None:
    cfg = tmp_path / "hotline.toml"
    cfg.write_text("http_port = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(cfg)
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_cli_reports_bad_setting_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.cli import main

    monkeypatch.setenv("HOTLINE_HTTP_PORT", "0")
    assert main(["db", "upgrade"]) == 2
    assert "HOTLINE_HTTP_PORT" in capsys.readouterr().err
