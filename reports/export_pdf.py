"""The PDF 通报 (reportlab): title, period, issuing unit, a summary written from the figures,
the department ranking, a trend chart of 满意率 and 差评数, and a chart of what the 差评 are
about. Chinese text needs a CJK TrueType font: Debian's fonts-wqy-zenhei (installed by
scripts/setup), whose .ttc reportlab reads with ``subfontIndex``."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from hotline.clock import to_local
from reports.build import Report
from reports.figures import BY_KEY, display
from reports.tables import ranking_table, summary_lines

FONT = "WenQuanYiZenHei"
FONT_FILES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/opentype/wqy/wqy-zenhei.ttc"),
)


class FontMissing(RuntimeError):
    pass


def _font() -> str:
    if FONT in pdfmetrics.getRegisteredFontNames():
        return FONT
    for path in FONT_FILES:
        if path.exists():
            pdfmetrics.registerFont(TTFont(FONT, str(path), subfontIndex=0))
            return FONT
    raise FontMissing(
        "the CJK font fonts-wqy-zenhei is not installed (scripts/setup installs it)"
    )


def _styles(font: str) -> dict[str, ParagraphStyle]:
    return {
        "title": ParagraphStyle("title", fontName=font, fontSize=18, leading=26,
                                alignment=TA_CENTER, spaceAfter=4 * mm),
        "sub": ParagraphStyle("sub", fontName=font, fontSize=11, leading=16,
                              alignment=TA_CENTER),
        "h": ParagraphStyle("h", fontName=font, fontSize=13, leading=20, spaceBefore=5 * mm,
                            spaceAfter=2 * mm),
        "body": ParagraphStyle("body", fontName=font, fontSize=10.5, leading=17,
                               firstLineIndent=21),
        "cell": ParagraphStyle("cell", fontName=font, fontSize=8.5, leading=11),
    }


def _trend_chart(report: Report, font: str) -> Drawing:
    drawing = Drawing(170 * mm, 62 * mm)
    drawing.add(String(0, 58 * mm, "满意率趋势（%）", fontName=font, fontSize=9))
    chart = HorizontalLineChart()
    chart.x, chart.y, chart.width, chart.height = 12 * mm, 8 * mm, 150 * mm, 44 * mm
    points = [v["satisfaction_rate"] for _, v in report.trend]
    chart.data = [[round((p or 0) * 100, 2) for p in points]]
    chart.categoryAxis.categoryNames = [p.code for p, _ in report.trend]
    chart.categoryAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = 100
    chart.valueAxis.labels.fontSize = 7
    chart.lines[0].strokeColor = colors.HexColor("#2F5597")
    chart.lines[0].strokeWidth = 1.5
    drawing.add(chart)
    return drawing


def _reasons_chart(report: Report, font: str) -> Drawing | None:
    totals: Counter[str] = Counter()
    labels: dict[str, str] = {}
    for reasons in report.reasons.values():
        for r in reasons:
            totals[r.code] += r.count
            labels[r.code] = r.label
    if not totals:
        return None
    top = totals.most_common(8)
    drawing = Drawing(170 * mm, 62 * mm)
    drawing.add(String(0, 58 * mm, "差评原因分布（件）", fontName=font, fontSize=9))
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 12 * mm, 8 * mm, 150 * mm, 44 * mm
    chart.data = [[n for _, n in top]]
    chart.categoryAxis.categoryNames = [labels[c] for c, _ in top]
    chart.categoryAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = 8
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontSize = 7
    chart.bars[0].fillColor = colors.HexColor("#C55A11")
    drawing.add(chart)
    return drawing


def _ranking(report: Report, styles: dict[str, ParagraphStyle]) -> Table:
    table = ranking_table(report)
    keep = [0, 1, 3, 4, 5, 6, 7, 8, 10, 11, 12]  # the department code is left out on paper
    header = [Paragraph(table.columns[i].title, styles["cell"]) for i in keep]
    body = []
    for row in table.rows:
        cells = []
        for i in keep:
            value, column = row[i], table.columns[i]
            if column.kind == "rate":
                text = display(BY_KEY["satisfaction_rate"], value)
            elif value is None:
                text = "—" if column.kind != "text" else ""
            else:
                text = str(value)
            cells.append(Paragraph(text, styles["cell"]))
        body.append(cells)
    grid = Table([header, *body], repeatRows=1)
    grid.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#DDEBF7")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]))
    return grid


def document(report: Report) -> bytes:
    font = _font()
    styles = _styles(font)
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=18 * mm,
        bottomMargin=18 * mm, title=f"{report.period.label}“好差评”情况通报",
        author=report.issuing_unit,
    )
    made = to_local(report.generated_at).strftime("%Y年%m月%d日")
    story = [
        Paragraph(f"关于{report.period.label}12345热线“好差评”情况的通报", styles["title"]),
        Paragraph(report.issuing_unit, styles["sub"]),
        Paragraph(
            f"统计期间：{report.period.start.isoformat()} 至 {report.period.end.isoformat()}"
            f"（北京时间）　　生成日期：{made}", styles["sub"],
        ),
        Paragraph("一、总体情况", styles["h"]),
        *(Paragraph(line, styles["body"]) for line in summary_lines(report)),
    ]
    if report.ranking:
        story += [Paragraph("二、部门排名", styles["h"]), _ranking(report, styles)]
    if report.trend:
        story += [Paragraph("三、满意率趋势", styles["h"]), _trend_chart(report, font)]
    chart = _reasons_chart(report, font)
    if chart is not None:
        story += [Paragraph("四、差评集中的事项", styles["h"]), chart]
    story.append(Spacer(1, 8 * mm))
    story.append(Paragraph(f"{report.issuing_unit}　{made}", styles["sub"]))
    doc.build(story)
    return out.getvalue()
