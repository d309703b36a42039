"""The dashboard's first page: analytics for the signed-in user's merchant, each chart with its table and CSV."""

from __future__ import annotations

import csv
import io

from flask import Response, abort, g

from app.dashboard import bp
from app.dashboard.charts import bar_chart, column_chart
from app.dashboard.rendering import locale, render
from app.dashboard.sessions import signed_in
from app.domain import analytics
from app.pages.catalogue import t
from app.services import db_session

COLUMN_CHARTS = ("enrollments", "points")  # per day; the others are one bar per platform or tier


@bp.get("")
@bp.get("/")
@signed_in
def overview():
    figures = analytics.overview(db_session(), g.user.merchant_id)
    charts = {name: _chart(series) for name, series in figures.charts().items()}
    return render("dashboard/overview.html", figures=figures, charts=charts)


@bp.get("/analytics/<name>.csv")
@signed_in
def analytics_csv(name: str):
    series = analytics.overview(db_session(), g.user.merchant_id).charts().get(name)
    if series is None:
        abort(404)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["label", *series.columns])
    writer.writerows(series.rows())
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"', "Cache-Control": "no-store"})


def _chart(series: analytics.Series) -> dict:
    lang = locale()
    title = t(f"dash.chart.{series.name}", lang)
    legend = {key: t(f"dash.column.{key}", lang) for key in series.columns}
    draw = column_chart if series.name in COLUMN_CHARTS else bar_chart
    return {"title": title, "svg": draw(series, title, legend), "legend": legend, "series": series}
