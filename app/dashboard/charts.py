"""Charts drawn on the server as inline SVG: no script, nothing to download, readable by a test. Colours come
from CSS classes (`series-0`, `series-1`, `axis`), so the page's light and dark themes restyle them."""

from __future__ import annotations

from markupsafe import Markup, escape

from app.domain.analytics import Series

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 28  # room for the axis labels
GRID_LINES = 4


def column_chart(series: Series, title: str, legend: dict[str, str]) -> Markup:
    """Columns per label (one per series column, side by side), a y axis with round steps, every 7th day named."""
    top = _nice_ceiling(max((max(values, default=0) for values in series.columns.values()), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(series.labels), 1)
    bar = slot * 0.8 / max(len(series.columns), 1)
    parts = [_grid(top, plot_h)]
    for i, label in enumerate(series.labels):
        x0 = LEFT + i * slot + slot * 0.1
        for n, (key, values) in enumerate(series.columns.items()):
            h = plot_h * values[i] / top
            parts.append(f'<rect class="series-{n}" x="{x0 + n * bar:.1f}" y="{TOP + plot_h - h:.1f}" '
                         f'width="{max(bar - 1, 1):.1f}" height="{h:.1f}"><title>{escape(label)}: '
                         f'{escape(legend.get(key, key))} {values[i]}</title></rect>')
        if (len(series.labels) - 1 - i) % 7 == 0:
            parts.append(f'<text class="axis" x="{x0 + slot * 0.4:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                         f'{escape(label[5:])}</text>')
    return _svg(series.name, title, "".join(parts), legend, series)


def bar_chart(series: Series, title: str, legend: dict[str, str]) -> Markup:
    """One horizontal bar per label, its number at the end."""
    (key, values), = series.columns.items()
    top = max(max(values, default=0), 1)
    row, label_w = 34, 140
    height = TOP + row * len(values) + 4
    parts = []
    for i, (label, value) in enumerate(zip(series.labels, values, strict=True)):
        y = TOP + i * row
        w = (WIDTH - label_w - 70) * value / top
        parts.append(f'<text class="axis" x="{label_w - 8}" y="{y + 20}" text-anchor="end">{escape(label)}</text>'
                     f'<rect class="series-0" x="{label_w}" y="{y + 6}" width="{w:.1f}" height="20" rx="3">'
                     f'<title>{escape(label)}: {value}</title></rect>'
                     f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + 20}">{value}</text>')
    return _svg(series.name, title, "".join(parts), legend, series, height)


def _grid(top: int, plot_h: float) -> str:
    lines = []
    for step in range(GRID_LINES + 1):
        y = TOP + plot_h - plot_h * step / GRID_LINES
        lines.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{_short(top * step // GRID_LINES)}</text>')
    return "".join(lines)


def _svg(name: str, title: str, body: str, legend: dict[str, str], series: Series, height: int = HEIGHT) -> Markup:
    keys = "".join(f'<span class="key"><span class="swatch series-{n}"></span>{escape(legend.get(key, key))}</span>'
                   for n, key in enumerate(series.columns)) if len(series.columns) > 1 else ""
    return Markup(f'<svg class="chart" id="chart-{name}" viewBox="0 0 {WIDTH} {height}" role="img" '
                  f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">{body}</svg>'
                  + (f'<p class="legend">{keys}</p>' if keys else ""))


def _nice_ceiling(value: int) -> int:
    """The smallest 1/2/5 x 10^n at or above `value` that splits into GRID_LINES whole steps (at least 4)."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude * GRID_LINES >= value:
                return step * magnitude * GRID_LINES
        magnitude *= 10


def _short(number: int) -> str:
    if number >= 1_000_000:
        return f"{number / 1_000_000:g}M"
    return f"{number / 1000:g}k" if number >= 10_000 else str(number)
