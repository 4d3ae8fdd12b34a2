"""The snapshots chart, drawn on the server as SVG: new bytes stored (bars, left scale) and
duration (line, right scale) of a source's last snapshots. No JavaScript."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

from ..manifest import Manifest, ManifestHead
from ..output import human_bytes, human_duration

CHART_POINTS = 60
WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 70, 60, 20, 40  # margins for the scales and dates


@dataclass(frozen=True)
class Point:
    at: datetime
    seconds: int
    new_bytes: int
    label: str  # the snapshot id


def chart_points(manifests: Sequence[Manifest | ManifestHead]) -> list[Point]:
    """The last CHART_POINTS manifests (oldest first) as points; missing stats count as 0."""
    return [Point(m.created_at, int(m.stats.get("seconds") or 0), int(m.stats.get("new_bytes") or 0), m.id)
            for m in list(manifests)[-CHART_POINTS:]]


def snapshot_chart(points: Sequence[Point], *, title: str) -> str:
    """An SVG document fragment; every text in it is escaped."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    max_bytes = max([p.new_bytes for p in points] + [1])
    max_seconds = max([p.seconds for p in points] + [1])
    step = plot_w / max(len(points), 1)
    bar_w = max(step * 0.7, 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label={quoteattr(title)}>',
             f"<title>{escape(title)}</title>",
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>']
    for fraction in (0.0, 0.5, 1.0):  # scales: new bytes on the left, duration on the right
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="bytes-scale" font-size="11" '
                     f'fill="#2b6cb0">{escape(human_bytes(int(max_bytes * fraction)))}</text>')
        parts.append(f'<text x="{WIDTH - RIGHT + 6}" y="{y + 4:.1f}" class="seconds-scale" font-size="11" '
                     f'fill="#c05621">{escape(_seconds(max_seconds * fraction))}</text>')
    line = []
    for i, p in enumerate(points):
        x = LEFT + step * i + (step - bar_w) / 2
        h = plot_h * p.new_bytes / max_bytes
        tip = f"{p.label}: {human_bytes(p.new_bytes)} new, {human_duration(p.seconds)}"
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                     f'fill="#90cdf4"><title>{escape(tip)}</title></rect>')
        line.append(f"{x + bar_w / 2:.1f},{TOP + plot_h * (1 - p.seconds / max_seconds):.1f}")
    if line:
        parts.append(f'<polyline class="duration" points="{" ".join(line)}" fill="none" stroke="#c05621" stroke-width="2"/>')
        for label_at in sorted({0, len(points) - 1}):
            p = points[label_at]
            x = LEFT + step * label_at + step / 2
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11" fill="#555">'
                         f'{escape(p.at.strftime("%Y-%m-%d %H:%M"))}</text>')
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="11" fill="#2b6cb0">bars: new bytes stored</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end" font-size="11" fill="#c05621">'
                 "line: duration</text>")
    parts.append("</svg>")
    return "".join(parts)


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 10 else human_duration(value)
