"""Report renderers: table, json, csv, md (text.py), html (html.py), xlsx (xlsx.py)."""

from __future__ import annotations

from clusterkit.cost.report import Report

TEXT_FORMATS = ("table", "json", "csv", "md", "html")
BINARY_FORMATS = ("xlsx",)


def render_text(report: Report, fmt: str) -> str:
    if fmt == "html":
        from clusterkit.cost.render.html import render_html

        return render_html(report)
    from clusterkit.cost.render import text

    return {"table": text.render_table, "json": text.render_json, "csv": text.render_csv,
            "md": text.render_md}[fmt](report)


def render_bytes(report: Report, fmt: str) -> bytes:
    from clusterkit.cost.render.xlsx import render_xlsx

    return render_xlsx(report)
