"""Small inline charts, drawn on the server as SVG: no chart library, no script. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 120, 24


def sparkline(values: Sequence[float | None], label: str, color: str = "#0969da") -> Markup:
    """A line over the buckets (None: no data in that bucket, a gap), scaled to its own maximum;
    the label is the chart's accessible name and tooltip."""
    top = max((v for v in values if v is not None), default=0.0) or 1.0
    step = WIDTH / max(1, len(values) - 1)
    runs: list[list[str]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            runs.append([])
            continue
        y = HEIGHT - 2 - (HEIGHT - 4) * value / top
        runs[-1].append(f"{i * step:.1f},{y:.1f}")
    paths = "".join(
        f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" stroke-width="1.5"/>'
        if len(run) > 1
        else f'<circle cx="{run[0].split(",")[0]}" cy="{run[0].split(",")[1]}" r="1.5" '
        f'fill="{color}"/>'
        for run in runs
        if run
    )
    name = escape(label)
    return Markup(
        f'<svg class="spark" role="img" aria-label="{name}" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}"><title>{name}</title>{paths}</svg>'
    )
