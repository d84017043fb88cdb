"""A small SVG chart for the reports page: horizontal bars, one or two series.

Drawn on the server, so reports read without JavaScript; every chart carries a title and
a description for screen readers, and its numbers also appear in the table beside it.
The colours meet WCAG AA contrast against white.
"""

from __future__ import annotations

from html import escape

BAR_HEIGHT = 18
GAP = 8
LABEL_WIDTH = 170
PLOT_WIDTH = 360
COLOURS = ("#a4161a", "#1d6b3a")  # breached: dark red; met: dark green (both ≥ 4.5:1 on white)


def bar_chart(
    title: str,
    labels: list[str],
    series: list[tuple[str, list[float]]],
    *,
    chart_id: str,
) -> str:
    """A horizontal bar chart; `series` is [(name, values per label)], at most two."""
    if not labels:
        return ""
    largest = max((value for _, values in series for value in values), default=0) or 1
    row_height = BAR_HEIGHT * len(series) + GAP
    height = row_height * len(labels) + 40
    width = LABEL_WIDTH + PLOT_WIDTH + 60

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-labelledby="{chart_id}-title '
        f'{chart_id}-desc" class="chart">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(_describe(labels, series))}</desc>',
    ]
    for row, label in enumerate(labels):
        top = row * row_height
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{top + BAR_HEIGHT * len(series) / 2 + 5}" '
            f'text-anchor="end" class="chart-label">{escape(label)}</text>'
        )
        for index, (_, values) in enumerate(series):
            value = values[row]
            length = PLOT_WIDTH * value / largest
            y = top + index * BAR_HEIGHT
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" '
                f'height="{BAR_HEIGHT - 3}" fill="{COLOURS[index % len(COLOURS)]}"/>'
            )
            parts.append(
                f'<text x="{LABEL_WIDTH + length + 4:.1f}" y="{y + BAR_HEIGHT - 6}" '
                f'class="chart-value">{_number(value)}</text>'
            )

    legend_y = height - 14
    for index, (name, _) in enumerate(series):
        x = LABEL_WIDTH + index * 140
        parts.append(
            f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" '
            f'fill="{COLOURS[index % len(COLOURS)]}"/>'
        )
        parts.append(f'<text x="{x + 18}" y="{legend_y}" class="chart-label">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _describe(labels: list[str], series: list[tuple[str, list[float]]]) -> str:
    lines = []
    for row, label in enumerate(labels):
        values = ", ".join(f"{name} {_number(values[row])}" for name, values in series)
        lines.append(f"{label}: {values}")
    return "; ".join(lines)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
