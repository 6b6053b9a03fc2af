"""Small line charts as inline SVG, for the app's Training tab: drawn on the server from a run's status, so that
the page needs no plotting library and the charts update with the status every few seconds."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")
WIDTH, HEIGHT = 360, 200
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 24, 34


def _ticks(low: float, high: float, n: int = 4) -> list[float]:
    if high <= low:
        return [low]
    step = 10 ** math.floor(math.log10((high - low) / n))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= n:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.2g}"


def line_chart(
    series: dict[str, Sequence[tuple[float, float]]],
    title: str,
    x_label: str,
    y_range: tuple[float, float] | None = None,
) -> str:
    """An SVG chart of each named series of (x, y) points, with axes, ticks and a legend; ``y_range`` fixes the
    vertical axis (the data's range otherwise). Points whose y is not a finite number are left out."""
    clean = {
        name: [(float(x), float(y)) for x, y in points if y is not None and math.isfinite(float(y))]
        for name, points in series.items()
    }
    clean = {name: points for name, points in clean.items() if points}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{html.escape(title)}" class="rf-chart">',
        f'<text x="{WIDTH / 2}" y="15" text-anchor="middle" font-size="12">{html.escape(title)}</text>',
    ]
    if not clean:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="11">no data yet</text>')
        return "".join(parts) + "</svg>"
    xs = [x for points in clean.values() for x, _ in points]
    ys = [y for points in clean.values() for _, y in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = y_range if y_range is not None else (min(ys), max(ys))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * plot_h

    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999" stroke-width="0.5"/>'
    )
    for tick in _ticks(y0, y1):
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(tick):.1f}" y2="{py(tick):.1f}" stroke="#ddd" '
            f'stroke-width="0.5"/><text x="{LEFT - 4}" y="{py(tick) + 3:.1f}" text-anchor="end" '
            f'font-size="9">{_label(tick)}</text>'
        )
    for tick in _ticks(x0, x1):
        parts.append(
            f'<text x="{px(tick):.1f}" y="{HEIGHT - BOTTOM + 12}" text-anchor="middle" font-size="9">'
            f"{_label(tick)}</text>"
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle" font-size="10">'
        f"{html.escape(x_label)}</text>"
    )
    for i, (name, points) in enumerate(clean.items()):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(points))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2" fill="{colour}"/>' for x, y in points]
        parts.append(
            f'<text x="{LEFT + 6}" y="{TOP + 12 + 11 * i}" font-size="9" fill="{colour}">{html.escape(name)}</text>'
        )
    return "".join(parts) + "</svg>"
