"""Objectives per job name, declared once in the sidecar's settings (JOBSIGHT_OBJECTIVES):

    generate-invoice: 99.5% succeed, 95% start within 30s
    import: 99% succeed

The sidecar exports each as metrics (`jobsight_objective`, `jobsight_objective_start_bucket`);
the generated alert rules read those, so one rule set burns every declared objective's budget
over several windows, and an objective changes with the sidecar's settings, not the rules. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SUCCEED = re.compile(r"^(?P<ratio>\d+(?:\.\d+)?)%\s+succeed$")
START = re.compile(r"^(?P<ratio>\d+(?:\.\d+)?)%\s+start\s+within\s+(?P<within>\S+)$")


@dataclass(frozen=True)
class Objective:
    job_name: str
    succeed: float | None = None  # share of finished jobs that complete
    start: float | None = None  # share of jobs that start within `start_within`
    start_within: float | None = None  # seconds: one of the wait histogram's bucket bounds


def _ratio(text: str) -> float:
    value = float(text) / 100
    if not 0 < value < 1:
        raise ValueError(f"{text}% is not between 0% and 100% (exclusive)")
    return value


def parse_one(job_name: str, text: str, buckets: Iterable[float]) -> Objective:
    """'99.5% succeed, 95% start within 30s' for one job name."""
    from jobsight.settings.parsing import parse_duration  # settings import this module

    name = job_name.strip()
    if not name:
        raise ValueError("an objective needs a job name")
    succeed = start = within = None
    for part in (p.strip() for p in str(text).split(",")):
        if found := SUCCEED.match(part):
            succeed = _ratio(found["ratio"])
        elif found := START.match(part):
            start, within = _ratio(found["ratio"]), parse_duration(found["within"])
            bounds = sorted(buckets)
            if within not in bounds:
                shown = ", ".join(f"{b:g}s" for b in bounds if b >= 1)
                raise ValueError(
                    f"{name}: start within {found['within']} is not a bound of the wait "
                    f"histogram; choose one of {shown}"
                )
        else:
            raise ValueError(
                f"{name}: {part!r} is neither 'N% succeed' nor 'N% start within DURATION'"
            )
    return Objective(name, succeed, start, within)


def parse(text: str | Mapping[str, str], buckets: Iterable[float]) -> tuple[Objective, ...]:
    """'a: 99% succeed; b: 95% start within 30s' (YAML: a mapping of job name to its text)."""
    bounds = tuple(buckets)
    if isinstance(text, Mapping):
        items = [(str(k), str(v)) for k, v in text.items()]
    else:
        items = []
        for entry in filter(None, (e.strip() for e in str(text).split(";"))):
            name, sep, rest = entry.partition(":")
            if not sep:
                raise ValueError(f"{entry!r} is not 'job name: objectives'")
            items.append((name, rest))
    found = [parse_one(name, rest, bounds) for name, rest in items]
    names = [o.job_name for o in found]
    if len(set(names)) != len(names):
        raise ValueError("a job name is declared twice")
    return tuple(found)
