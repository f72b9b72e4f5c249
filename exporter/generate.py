"""`jobsight generate`: writes every generated, committed file; `--check` only compares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from exporter import metrics_doc

GENERATED: dict[str, Callable[[], str]] = {
    "docs/metrics.md": metrics_doc.render,
}


def generate(root: Path, check: bool) -> list[str]:
    """Writes (or, with check, compares) each generated file; returns the stale/written paths."""
    changed = []
    for relative, render in GENERATED.items():
        path = root / relative
        content = render()
        if path.exists() and path.read_text() == content:
            continue
        changed.append(relative)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    return changed
