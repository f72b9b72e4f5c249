"""What the canary analysis reads (health/canary.py), fetched by the jobs source at each poll:
per 30-second slice of the analysis window, job name and worker version, the jobs finished,
failed, timed and slower than the job name's p95 (pooled over every version); and the normalised
error texts of each version's failed jobs. Bounded: the MAX_VERSIONS versions that finished the
most jobs in the window, at most MAX_FAILED_READ failed jobs, MAX_FINGERPRINTS texts a version."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg

SLICE_S = 30
MAX_VERSIONS = 6
MAX_FAILED_READ = 5_000
MAX_FINGERPRINTS = 20


@dataclass(frozen=True)
class VersionSlice:
    """One job name's finished jobs of one worker version in one slice of the window."""

    job_name: str
    version: str
    slice: int
    finished: int
    failed: int
    timed: int = 0  # of those, with a run time
    slow: int = 0  # of those, slower than the job name's pooled p95 over the window


@dataclass(frozen=True)
class StuckRow:
    """Jobs of one job name and worker version running for longer than JOBSIGHT_STUCK_AFTER."""

    version: str
    job_name: str
    stuck: int


@dataclass(frozen=True)
class Fingerprint:
    """How often one normalised error text ended a failed job of a version in the window."""

    version: str
    fingerprint: str
    count: int


# $1 window (s), $2 slice (s), $3 versions kept
SLICES = """
WITH recent AS (
  SELECT type, coalesce(worker_version, '') AS version, status,
         extract(epoch FROM finished_at - started_at)::float8 AS run_s,
         floor(extract(epoch FROM finished_at) / $2)::bigint AS slice
  FROM jobs
  WHERE finished_at > now() - $1 * interval '1 second' AND status IN ('completed', 'failed')
), busiest AS (
  SELECT version FROM recent GROUP BY 1 ORDER BY count(*) DESC, version LIMIT $3
), line AS (
  SELECT type, percentile_cont(0.95) WITHIN GROUP (ORDER BY run_s) AS p95
  FROM recent WHERE run_s IS NOT NULL GROUP BY 1
)
SELECT r.type AS job_name, r.version, r.slice, count(*) AS finished,
       count(*) FILTER (WHERE r.status = 'failed') AS failed,
       count(r.run_s) AS timed, count(*) FILTER (WHERE r.run_s > l.p95) AS slow
FROM recent r JOIN busiest b USING (version) LEFT JOIN line l USING (type)
GROUP BY 1, 2, 3
"""

# $1 window (s), $2 versions, $3 limit
FAILED = """
SELECT coalesce(worker_version, '') AS version, coalesce(error, '') AS error
FROM jobs
WHERE status = 'failed' AND finished_at > now() - $1 * interval '1 second'
  AND coalesce(worker_version, '') = ANY($2::text[])
ORDER BY finished_at DESC
LIMIT $3
"""

_IDS = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_HEX = re.compile(r"\b(?:0x)?[0-9a-f]*\d[0-9a-f]*\b", re.IGNORECASE)
MAX_TEXT = 200


def fingerprint(error: str) -> str:
    """An error text with what varies between occurrences stripped: ids, quoted values, numbers
    (so "timeout after 30 s on job 7f3e..." and "timeout after 31 s on job 9a1c..." are one)."""
    text = _IDS.sub("<id>", error)
    text = _QUOTED.sub("<value>", text)
    text = _HEX.sub("<n>", text)
    return " ".join(text.split())[:MAX_TEXT]


def fingerprints(rows: list[dict[str, Any]]) -> list[Fingerprint]:
    """Failed jobs' (version, error) -> the commonest fingerprints of each version. Pure."""
    counts: dict[str, Counter[str]] = {}
    for row in rows:
        counts.setdefault(row["version"], Counter())[fingerprint(row["error"])] += 1
    return [
        Fingerprint(version, text, n)
        for version in sorted(counts)
        for text, n in counts[version].most_common(MAX_FINGERPRINTS)
    ]


@dataclass
class VersionCounts:
    """What one read found, and when (Unix time): kept between reads."""

    read_at: float
    slices: list[VersionSlice]
    fingerprints: list[Fingerprint]


def read_due(previous: VersionCounts | None, now: float) -> bool:
    """At most one read per slice: finer reads would only repeat the same counts."""
    return previous is None or now - previous.read_at >= SLICE_S


async def read_versions(
    conn: asyncpg.Connection, window: float
) -> tuple[list[VersionSlice], list[Fingerprint]]:
    slices = [VersionSlice(**r) for r in await conn.fetch(SLICES, window, SLICE_S, MAX_VERSIONS)]
    versions = sorted({s.version for s in slices})
    failed = await conn.fetch(FAILED, window, versions, MAX_FAILED_READ) if versions else []
    return slices, fingerprints([dict(r) for r in failed])
