"""`jobsight generate`: writes every generated, committed file; `--check` only compares.

Each entry turns the file's current text into what it must be: whole files are rendered anew;
docs/settings.md and docs/gates.md keep their prose: only the part between their
`generated:NAME` markers is rewritten."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from jobsight.generators import metrics_doc, settings_doc


def whole(render: Callable[[], str]) -> Callable[[str], str]:
    return lambda _old: render()


def section(name: str, render: Callable[[], str]) -> Callable[[str], str]:
    begin, end = f"<!-- generated:{name} begin -->", f"<!-- generated:{name} end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)

    def rewrite(old: str) -> str:
        if not pattern.search(old):
            raise ValueError(f"missing the {begin} ... {end} markers")
        return pattern.sub(lambda _m: f"{begin}\n{render()}{end}", old, count=1)

    return rewrite


GENERATED: dict[str, Callable[[str], str]] = {
    "docs/metrics.md": whole(metrics_doc.render),
    "docs/settings.md": section("sidecar-settings", settings_doc.render_table),
    "docs/gates.md": section("triggers", settings_doc.render_triggers),
}
# Several sections of one file: applied in turn.
SECTIONS: dict[str, list[Callable[[str], str]]] = {}


def monitoring_files() -> dict[str, Callable[[str], str]]:
    """Dashboards and alert rules (their builders import the sidecar's metric names)."""
    from jobsight.alerts import rules
    from jobsight.dashboards import build
    from jobsight.generators import chart_schema

    dashboards = build.render_all()
    files = {f"dashboards/generated/{name}": text for name, text in dashboards.items()}
    files.update(rules.render_all())
    # The chart packages its own copies (a chart cannot read outside its folder).
    files.update({f"helm/jobsight/files/dashboards/{n}": t for n, t in dashboards.items()})
    files["helm/jobsight/files/prometheusrule.yaml"] = files["alerts/generated/prometheusrule.yaml"]
    files["helm/jobsight/values.schema.json"] = chart_schema.render()
    return {path: replaced_by(text) for path, text in files.items()}


def replaced_by(text: str) -> Callable[[str], str]:
    """A rewrite that ignores the file's old text."""
    return lambda _old: text


def generate(root: Path, check: bool) -> list[str]:
    """Writes (or, with check, compares) each generated file; returns the stale/written paths."""
    changed = []
    for relative, rewrite in {**GENERATED, **monitoring_files()}.items():
        path = root / relative
        old = path.read_text() if path.exists() else ""
        content = rewrite(old)
        for more in SECTIONS.get(relative, []):
            content = more(content)
        if content == old:
            continue
        changed.append(relative)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    return changed
