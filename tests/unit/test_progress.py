"""Terminal progress (issue 12 "Long work shows progress … in the terminal"): a rewritten line
on a terminal, plain lines, not flooding, otherwise."""

from __future__ import annotations

import io

from hotline.progress import Progress, bar


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_shows_share_count_and_percentage() -> None:
    assert bar(6, 24, width=8) == "[##......] 6/24  25%"
    assert bar(0, 0, width=4) == "[####] 0/0 100%"  # nothing to do is done


def test_on_a_terminal_one_line_is_rewritten_in_place() -> None:
    out = _Tty()
    p = Progress("prompts", total=4, stream=out)
    for n in range(1, 5):
        p.step(n, f"p{n}")
    p.finish("4 generated")
    text = out.getvalue()
    assert text.count("\r\x1b[2K") == 5 and text.count("\n") == 1
    assert text.endswith("prompts: 4 generated\n")


def test_elsewhere_plain_lines_a_few_per_run() -> None:
    out = io.StringIO()
    p = Progress("import", total=100, stream=out)
    for n in range(1, 101):
        p.step(n)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 4 <= len(lines) <= 6  # each quarter and the end, not 100 lines
    assert lines[-1] == "import " + bar(100, 100)
