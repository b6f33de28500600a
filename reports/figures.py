"""Every figure of the 通报, defined once: what is counted, over what, what is left out, and the
seed it comes from. The README's "Figures" section mirrors this table (a test keeps them in
step), and every document, table and API answer takes its names and formulas from here.

Two layers:

- ``COUNTS``: the tallies the database computes (``reports.engine`` runs them as SQL
  aggregates); each says which rows it counts.
- ``FIGURES``: what is published, each either one count or a ratio of two counts. A ratio
  whose denominator is 0 is ``None`` (shown "—"), never 0 % or 100 %.

Common rules (DOMAIN.md): invalid ratings (复核, rule 6) are left out of every figure and
only counted apart (``invalid``); default ratings (rule 2) are not real votes: they count in
评价数 and 评价率 but not in 主动评价率, 好评率, 满意率 or 差评率, and their number is shown on its
own. Events are counted in the period of their own Beijing date (a rating by ``rated_at``, a
call by ``started_at``, a 差评 item by the date it was opened).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Unit = Literal["count", "rate"]


@dataclass(frozen=True)
class Count:
    key: str
    name: str
    counts: str  # which rows, in words


@dataclass(frozen=True)
class Figure:
    key: str
    name: str  # the Chinese name used in every document
    unit: Unit
    numerator: str  # a Count key
    denominator: str | None  # a Count key (rates only)
    left_out: str
    seed: str
    higher_is_better: bool = True
    loop: bool = False  # a 差评 loop figure (from the 差评 items, not the ratings)


COUNTS: tuple[Count, ...] = (
    Count("served", "服务量", "calls answered by an agent (abandoned calls left out)"),
    Count("handed", "转评价量", "served calls handed to the keypad survey"),
    Count("rated", "评价数", "valid ratings of every channel, defaults included"),
    Count("per_call_rated", "一次一评评价数", "valid 一次一评 ratings, defaults included"),
    Count("per_call_real", "一次一评主动评价数", "valid 一次一评 ratings that are not defaults"),
    Count("keypad", "按键评价数", "valid keypad ratings (一次一评 by the caller's keys)"),
    Count("keypad_bad", "按键差评数", "valid keypad ratings 不满意 or 非常不满意"),
    Count("defaults", "默认评价数", "valid default ratings (rule 2)"),
    Count("real", "有效评价数", "valid ratings that are not defaults (real votes)"),
    Count("good", "好评数", "real votes 非常满意 or 满意"),
    Count("satisfied", "满意数", "real votes 非常满意, 满意 or 基本满意"),
    Count("bad", "差评数", "real votes 不满意 or 非常不满意"),
    Count("invalid", "无效评价数", "ratings found invalid on 复核 (恶意差评, 误评)"),
    # the 差评 loop, counted on the 差评 items opened in the period
    Count("items", "差评件数", "差评 items opened, items closed as invalid on 复核 left out"),
    Count("verified", "已核实数", "items whose department has verified them"),
    Count("to_rectify", "需整改数", "items verified as 属实 (they need 整改)"),
    Count("rectified", "已整改数", "items needing 整改 whose 整改 is done"),
    Count("rectified_on_time", "按期整改数", "items whose 整改 was done by its deadline"),
    Count("replied", "已回复数", "items the department has answered (整改 reply or 误评 finding)"),
    Count("overdue", "超期数", "items past their deadline: still open, or done after it"),
    Count("callback_due", "应回访数", "items whose 整改 is done (each must be called back)"),
    Count("called_back", "已回访数", "items called back with the citizen reached"),
    Count("callback_satisfied", "回访满意数", "回访 results 满意 (level 1–3) with the 整改"),
    Count("appeals", "申诉数", "申诉 filed by staff on items opened in the period"),
    Count("review_changed", "复核改判数", "items whose 复核 set the 差评 aside as invalid"),
)

FIGURES: tuple[Figure, ...] = (
    Figure("served", "服务量", "count", "served", None,
           "calls nobody answered (abandoned)", "seed 004 月调度"),
    Figure("rated", "评价数", "count", "rated", None,
           "invalid ratings", "seed 000 第三条"),
    Figure("rating_rate", "评价率", "rate", "per_call_rated", "served",
           "一事一评 (回访) ratings; invalid ratings", "seed 004"),
    Figure("active_rating_rate", "主动评价率", "rate", "per_call_real", "served",
           "defaults; 一事一评 ratings; invalid ratings", "seed 004 着力提升主动评价率"),
    Figure("defaults", "默认评价数", "count", "defaults", None,
           "invalid ratings", "seeds 000–003, DOMAIN.md rule 2"),
    Figure("real", "有效评价数", "count", "real", None,
           "defaults; invalid ratings", "DOMAIN.md rules 2 and 6"),
    Figure("good_rate", "好评率", "rate", "good", "real",
           "defaults; invalid ratings", "seed 000 通报表扬"),
    Figure("satisfaction_rate", "满意率", "rate", "satisfied", "real",
           "defaults; invalid ratings", "seed 000, DOMAIN.md rule 7"),
    Figure("bad_count", "差评数", "count", "bad", None,
           "invalid ratings (复核)", "seed 000", higher_is_better=False),
    Figure("bad_rate", "差评率", "rate", "bad", "real",
           "defaults; invalid ratings", "seed 000", higher_is_better=False),
    Figure("invalid", "无效评价数", "count", "invalid", None,
           "(only these are counted: shown apart)", "DOMAIN.md rule 6", higher_is_better=False),
    Figure("verification_rate", "核实率", "rate", "verified", "items",
           "items set aside on 复核", "seed 001 及时核实", loop=True),
    Figure("rectification_rate", "整改率", "rate", "rectified", "to_rectify",
           "items found 误评/恶意", "seed 004 差评件件有整改", loop=True),
    Figure("on_time_rectification_rate", "按期整改率", "rate", "rectified_on_time", "to_rectify",
           "items found 误评/恶意", "seed 004 100%按期整改", loop=True),
    Figure("reply_rate", "回复率", "rate", "replied", "items",
           "items set aside on 复核", "seed 000 回复率达100%", loop=True),
    Figure("overdue", "超期数", "count", "overdue", None,
           "items set aside on 复核", "seeds 000, 001 (15 个工作日)",
           higher_is_better=False, loop=True),
    Figure("callback_rate", "回访率", "rate", "called_back", "callback_due",
           "items not yet 整改 (nothing to call back about)", "seeds 000, 001, 004",
           loop=True),
    Figure("rectification_satisfaction_rate", "整改结果满意率", "rate", "callback_satisfied",
           "called_back", "回访 that did not reach the citizen", "seed 004 整改结果满意率100%",
           loop=True),
    Figure("appeals", "申诉数", "count", "appeals", None,
           "(all appeals counted)", "seed 002 允许工作人员对差评进行申诉申辩", loop=True),
    Figure("review_changed", "复核改判数", "count", "review_changed", None,
           "reviews that upheld the 差评", "seed 000 复核, DOMAIN.md rule 6", loop=True),
)

COUNT_KEYS: tuple[str, ...] = tuple(c.key for c in COUNTS)
BY_KEY: dict[str, Figure] = {f.key: f for f in FIGURES}
RATING_FIGURES: tuple[Figure, ...] = tuple(f for f in FIGURES if not f.loop)
LOOP_FIGURES: tuple[Figure, ...] = tuple(f for f in FIGURES if f.loop)


def value(figure: Figure, counts: Mapping[str, int | None]) -> float | int | None:
    """One figure from the counts: a count, a ratio in 0..1, or None (nothing to divide by,
    or the count is not known for this grouping)."""
    top = counts.get(figure.numerator)
    if figure.denominator is None:
        return top
    bottom = counts.get(figure.denominator)
    if top is None or not bottom:
        return None
    return top / bottom


def values(counts: Mapping[str, int | None]) -> dict[str, float | int | None]:
    return {f.key: value(f, counts) for f in FIGURES}


def display(figure: Figure, v: float | int | None) -> str:
    """A figure as the terminal and the CSV show it: rates as percentages with two decimals."""
    if v is None:
        return "—"
    if figure.unit == "rate":
        return f"{v * 100:.2f}%"
    return str(int(v))


def markdown_table() -> str:
    """The README section's table, generated from the definitions above."""
    names = {c.key: c.name for c in COUNTS}
    lines = [
        "| figure | 名称 | numerator | denominator | left out | seed |",
        "|---|---|---|---|---|---|",
    ]
    for f in FIGURES:
        denominator = names[f.denominator] if f.denominator else "—"
        lines.append(
            f"| `{f.key}` | {f.name} | {names[f.numerator]} | {denominator} | {f.left_out} "
            f"| {f.seed} |"
        )
    return "\n".join(lines)
