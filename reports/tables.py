"""A report as plain tables (header + rows of values): the one layout every format shares.

The xlsx workbook, the CSV files, the PDF's tables and the terminal all read these, so a column
is named and ordered in one place. Values stay typed (int, float ratios, dates, None); each
format decides how to show them (reports.figures.display for text).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from hotline.clock import to_local
from hotline.levels import Level
from reports.build import Report
from reports.engine import GROUPING_LABELS
from reports.figures import BY_KEY, FIGURES, RATING_FIGURES, Figure
from reports.funnel import FLAG_LABELS

TABLES = ("figures", "ranking", "agents", "funnel", "reasons", "ledger")


@dataclass
class Column:
    title: str
    kind: str = "text"  # text, count, rate, score, date, datetime


@dataclass
class Table:
    name: str  # file / sheet name
    title: str  # Chinese sheet title
    columns: list[Column]
    rows: list[list[Any]]


def _figure_columns(figures: tuple[Figure, ...]) -> list[Column]:
    return [Column(f.name, f.unit) for f in figures]


def figures_table(report: Report) -> Table:
    columns = [Column(GROUPING_LABELS[report.grouping]), Column("编码"),
               *_figure_columns(FIGURES)]
    rows = [[r.name, r.key or "", *(r.values[f.key] for f in FIGURES)] for r in report.rows]
    if report.total is not None and report.grouping != "total":
        t = report.total
        rows.append([t.name, "", *(t.values[f.key] for f in FIGURES)])
    return Table("figures", "统计汇总", columns, rows)


def ranking_table(report: Report) -> Table:
    order = report.ranking
    by_key = {r.key: r for r in report.rows} if report.grouping == "department" else {}
    shown = ("satisfaction_rate", "good_rate", "bad_count", "bad_rate",
             "on_time_rectification_rate", "callback_rate", "real")
    columns = [Column("排名", "count"), Column("部门"), Column("部门编码"),
               *_figure_columns(tuple(BY_KEY[k] for k in shown)),
               Column("表扬"), Column("排名靠后"), Column("连续靠后通报")]
    rows = []
    for r in order:
        row = by_key.get(r.key)
        vals = row.values if row is not None else {}
        rows.append([
            r.rank, report.name_of(r.key), r.key, *(vals.get(k) for k in shown),
            "是" if r.praised else "", "是" if r.bottom else "", "是" if r.flagged else "",
        ])
    return Table("ranking", "部门排名", columns, rows)


def agents_table(report: Report, part_names: list[str]) -> Table:
    columns = [Column("排名", "count"), Column("工号"), Column("有效评价数", "count"),
               Column("满意率", "rate"), Column("满意度得分", "score"),
               *(Column(name, "score") for name in part_names), Column("总分", "score")]
    rows = [
        [a.rank, a.agent_id, a.votes, a.satisfaction_rate, a.satisfaction_points,
         *(a.parts.get(n) for n in part_names), a.total]
        for a in report.agents
    ]
    return Table("agents", "坐席考核", columns, rows)


def funnel_table(report: Report) -> Table:
    columns = [Column("队列" if report.grouping == "queue" else "工号"),
               Column("服务量", "count"), Column("转评价量", "count"),
               Column("按键评价数", "count"), Column("按键差评数", "count"),
               Column("转评价比例", "rate"), Column("按键评价比例", "rate"), Column("提示")]
    rows = []
    if report.funnel is not None:
        for f in report.funnel.rows:
            rows.append([f.key, f.served, f.handed, f.rated, f.bad, f.handoff_share,
                         f.rated_share, "；".join(FLAG_LABELS[x] for x in f.flags)])
    return Table("funnel", "参评漏斗", columns, rows)


def reasons_table(report: Report) -> Table:
    columns = [Column("部门"), Column("位次", "count"), Column("差评原因代码"),
               Column("差评原因"), Column("差评数", "count")]
    rows = []
    for dept in sorted(report.reasons, key=lambda d: (d is None, d or "")):
        for i, reason in enumerate(report.reasons[dept], start=1):
            rows.append([report.name_of(dept), i, reason.code, reason.label, reason.count])
    return Table("reasons", "差评原因", columns, rows)


def _local(value: dt.datetime | None, report: Report) -> dt.datetime | None:
    # openpyxl refuses aware datetimes; local wall time is what an office reads anyway
    return None if value is None else to_local(value).replace(tzinfo=None)


def ledger_table(report: Report) -> Table:
    columns = [Column("差评单号", "count"), Column("工单号"), Column("责任单位"), Column("工号"),
               Column("差评时间", "datetime"), Column("评价等级"), Column("差评原因"),
               Column("核实结果"), Column("核实时间", "datetime"), Column("整改期限", "date"),
               Column("整改回复"), Column("整改时间", "datetime"), Column("回访时间", "datetime"),
               Column("回访是否解决"), Column("回访满意度"), Column("申诉次数", "count"),
               Column("复核"), Column("轮次", "count"), Column("状态"), Column("超期")]
    rows = []
    for item in report.ledger:
        solved = {True: "已解决", False: "未解决"}.get(item.followup_solved, "")  # type: ignore[arg-type]
        rows.append([
            item.item_id, item.case_number or "", report.name_of(item.department_code),
            item.agent_id or "", _local(item.rated_at, report), Level(item.level).label,
            ",".join(item.reason_codes), item.verification_label,
            _local(item.verified_at, report), item.rectify_due, item.rectification_reply or "",
            _local(item.rectified_at, report), _local(item.followup_at, report), solved,
            Level(item.followup_level).label if item.followup_level else "", item.appeals,
            "改判无效" if item.state == "invalid" else "", item.round, item.state_label,
            "是" if item.overdue else "",
        ])
    return Table("ledger", "差评台账", columns, rows)


def summary_lines(report: Report) -> list[str]:
    """The summary paragraph of the 通报, written from the figures (PDF and the xlsx summary)."""
    lines = []
    t = report.total or (report.rows[0] if report.rows else None)
    if t is not None:
        v = t.values

        def show(key: str) -> str:
            from reports.figures import display

            return display(BY_KEY[key], v[key])

        lines.append(
            f"{report.period.label}，热线共服务 {show('served')} 次，收到评价 {show('rated')} 个"
            f"（其中默认评价 {show('defaults')} 个，复核认定无效 {show('invalid')} 个），"
            f"评价率 {show('rating_rate')}，主动评价率 {show('active_rating_rate')}。"
        )
        lines.append(
            f"有效评价中好评率 {show('good_rate')}，满意率 {show('satisfaction_rate')}，"
            f"差评 {show('bad_count')} 个，差评率 {show('bad_rate')}。"
        )
        lines.append(
            f"差评整改率 {show('rectification_rate')}，按期整改率 "
            f"{show('on_time_rectification_rate')}，回复率 {show('reply_rate')}，"
            f"超期 {show('overdue')} 件，回访率 {show('callback_rate')}，整改结果满意率 "
            f"{show('rectification_satisfaction_rate')}；申诉 {show('appeals')} 件，复核改判 "
            f"{show('review_changed')} 件。"
        )
    ranked = [r for r in report.ranking if r.rank is not None]
    praised = [report.name_of(r.key) for r in ranked if r.praised]
    bottom = [report.name_of(r.key) for r in ranked if r.bottom]
    flagged = [report.name_of(r.key) for r in ranked if r.flagged]
    if report.scope.limited and ranked:
        r = ranked[0]
        lines.append(f"本单位在 {report.ranked_count} 个部门中排名第 {r.rank} 位。")
    else:
        if praised:
            lines.append("予以通报表扬的部门：" + "、".join(praised) + "。")
        if bottom:
            lines.append("排名靠后的部门：" + "、".join(bottom) + "。")
        if flagged:
            lines.append("连续排名靠后、予以通报的部门：" + "、".join(flagged) + "。")
    return lines


def summary_table(report: Report) -> Table:
    columns = [Column("指标"), Column("数值", "mixed"), Column("口径")]
    t = report.total or (report.rows[0] if report.rows and report.scope.limited else None)
    rows: list[list[Any]] = [
        ["标题", f"{report.period.label}12345热线“好差评”情况通报", ""],
        ["发文单位", report.issuing_unit, ""],
        ["统计期间", f"{report.period.start.isoformat()} 至 {report.period.end.isoformat()}",
         "北京时间自然日"],
    ]
    if t is not None:
        for f in FIGURES:
            rows.append([f.name, (f.unit, t.values[f.key]), _basis(f)])
    for line in summary_lines(report):
        rows.append(["说明", line, ""])
    return Table("summary", "汇总", columns, rows)


def _basis(f: Figure) -> str:
    from reports.figures import COUNTS

    names = {c.key: c.name for c in COUNTS}
    if f.denominator is None:
        return names[f.numerator]
    return f"{names[f.numerator]} ÷ {names[f.denominator]}"


def all_tables(report: Report, part_names: list[str]) -> list[Table]:
    return [
        summary_table(report), figures_table(report), ranking_table(report),
        agents_table(report, part_names), funnel_table(report), reasons_table(report),
        ledger_table(report),
    ]


def table(report: Report, name: str, part_names: list[str]) -> Table:
    return {t.name: t for t in all_tables(report, part_names)}[name]


__all__ = ["RATING_FIGURES", "TABLES", "Column", "Table", "all_tables", "table"]
