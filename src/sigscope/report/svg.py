"""Charts as inline SVG (no script, no library, works offline): signed share over time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

Point = tuple[datetime, float]  # when, share signed (0..1)

PALETTE = ("#1f6f8b", "#a86b00", "#6a3d9a", "#1e7f4f", "#b4432f", "#4b5563", "#b15928", "#2c7fb8")


def _x(when: datetime, start: float, span: float, left: int, width: int) -> float:
    return left + (when.timestamp() - start) / span * width if span else left + width / 2


def line_chart(series: Sequence[tuple[str, Sequence[Point]]], width: int = 1200, height: int = 240) -> str:
    """One line per (label, points), y from 0 to 100 % signed, x by time; each point a circle whose title
    says when and how much."""
    left, right, top, bottom = 48, 16, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    times = [p[0].timestamp() for _, points in series for p in points]
    start, end = (min(times), max(times)) if times else (0.0, 0.0)
    span = end - start
    out = [
        f"<svg class='chart' viewBox='0 0 {width} {height}' role='img' "
        f"xmlns='http://www.w3.org/2000/svg' aria-label='signed share over time'>"
    ]
    for pct in (0, 25, 50, 75, 100):
        y = top + plot_h * (1 - pct / 100)
        out.append(
            f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e5e7eb'/>"
            f"<text x='{left - 6}' y='{y + 4:.1f}' font-size='11' text-anchor='end' fill='#6b7280'>"
            f"{pct}%</text>"
        )
    if times:
        for when, anchor, edge in (
            (min(p[0] for _, ps in series for p in ps), "start", left),
            (max(p[0] for _, ps in series for p in ps), "end", width - right),
        ):
            out.append(
                f"<text x='{edge}' y='{height - 8}' font-size='11' text-anchor='{anchor}' fill='#6b7280'>"
                f"{when:%Y-%m-%d %H:%M}</text>"
            )
    for index, (label, points) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        coords = [
            (_x(when, start, span, left, plot_w), top + plot_h * (1 - share), when, share)
            for when, share in points
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in coords)
        out.append(
            f"<g class='series' data-label='{escape(label)}'><title>{escape(label)}</title>"
            f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{path}'/>"
        )
        for x, y, when, share in coords:
            out.append(
                f"<circle class='pt' cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{colour}'>"
                f"<title>{escape(label)} {when:%Y-%m-%d %H:%M}: {share:.0%} signed</title></circle>"
            )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def legend(labels: Sequence[str]) -> str:
    return (
        "<div class='legend'>"
        + "".join(
            f"<span><i style='background:{PALETTE[i % len(PALETTE)]}'></i>{escape(label)}</span>"
            for i, label in enumerate(labels)
        )
        + "</div>"
    )


def sparkline(points: Sequence[Point], width: int = 120, height: int = 24) -> str:
    """A repository's signed share over time in a table cell."""
    if not points:
        return ""
    times = [p[0].timestamp() for p in points]
    start, span = min(times), max(times) - min(times)
    coords = [(_x(when, start, span, 2, width - 4), 2 + (height - 4) * (1 - share)) for when, share in points]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    last_x, last_y = coords[-1]
    return (
        f"<svg class='spark' viewBox='0 0 {width} {height}' xmlns='http://www.w3.org/2000/svg'>"
        f"<polyline fill='none' stroke='#1f6f8b' stroke-width='1.5' points='{path}'/>"
        f"<circle class='pt' cx='{last_x:.1f}' cy='{last_y:.1f}' r='2' fill='#1f6f8b'/></svg>"
    )
