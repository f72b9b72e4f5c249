"""What every fault test asserts once the dust settles: each job ran to completion exactly once,
no attempt was recorded twice, the rows agree with the engine, and no live worker was taken for
crashed."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from tests.support.transitions import illegal_transitions


async def exactly_once_violations(conn: asyncpg.Connection, expected_jobs: int) -> list[str]:
    """Everything wrong with the `jobs` / `job_details` record, as readable lines (empty: none)."""
    problems: list[str] = []
    total = await conn.fetchval("SELECT count(*) FROM jobs")
    if total != expected_jobs:
        problems.append(f"{total} jobs rows, expected {expected_jobs}")
    for row in await conn.fetch(
        """SELECT j.job_id, j.status::text AS status, j.finished_at,
                  (SELECT count(*) FROM job_details d WHERE d.tenant = j.tenant
                     AND d.job_id = j.job_id AND d.status = 'completed') AS completions
           FROM jobs j
           WHERE j.status <> 'completed' OR j.finished_at IS NULL
              OR (SELECT count(*) FROM job_details d WHERE d.tenant = j.tenant
                    AND d.job_id = j.job_id AND d.status = 'completed') <> 1"""
    ):
        problems.append(
            f"job {row['job_id']}: {row['status']}, finished {row['finished_at']}, "
            f"{row['completions']} completed attempts"
        )
    for row in await conn.fetch(
        """SELECT job_id, attempt, count(*) AS n FROM job_details WHERE step_name = 'attempt'
           GROUP BY tenant, job_id, attempt HAVING count(*) > 1"""
    ):
        problems.append(f"job {row['job_id']}: attempt {row['attempt']} recorded {row['n']} times")
    problems += [f"illegal transition {t}" for t in await illegal_transitions(conn)]
    return problems


async def crashed_workers(conn: asyncpg.Connection) -> list[str]:
    """pgqueue workers the maintainer declared crashed (host:pid)."""
    rows = await conn.fetch("SELECT host, pid FROM pgqueue.worker WHERE state = 'crashed'")
    return [f"{r['host']}:{r['pid']}" for r in rows]


def print_logs(folder: Path) -> None:
    """The worker processes' own words (w*.log), shown by pytest when the test fails."""
    for log in sorted(folder.glob("w*.log")):
        print(f"--- {log.name}\n{log.read_text(errors='replace')[-6000:]}")
