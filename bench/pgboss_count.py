"""Cost of counting pg-boss's finished jobs from its job table (issue 16).

On one PostgreSQL, two databases get a real pg-boss schema from its own start(): pg-boss 11
(schema 26: no index on completed_on, so the count is a sequential scan) and the latest pg-boss
12 (its job_i16 and job_i14 indexes). Connections use the sidecar's session settings. Both job
tables are grown to the same history of finished jobs (3 queues, 10% failed, spread over
pg-boss's default 7-day retention), and at each size the bench times, on both databases in the
same run:
  count   the pgboss source's count of the job table (counters, trigger windows, failed jobs)
  poll    one whole poll of the pgboss source, which includes the count when it is due
and derives how often a scan may run under JOBSIGHT_PGBOSS_SCAN_SHARE's default (5%).

Usage: python -m bench.pgboss_count [--sizes 100000,1000000,3000000] [--repeats N]
Needs `npm ci` in tests/pgboss/v11 and tests/pgboss/v12 (make test does it).
Writes bench/results/pgboss_count.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import asyncpg

from jobsight.devstack.localstack import LocalPostgres
from jobsight.settings import SidecarSettings
from jobsight.sidecar.app import server_settings
from jobsight.sources import pgboss
from jobsight.sources.base import PollContext

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "pgboss_count.json"
RELEASES = {"pg-boss 11 (scan)": "v11", "pg-boss 12 latest (index)": "v12"}
HISTORY = """
INSERT INTO pgboss.job (id, name, data, state, created_on, started_on, completed_on, start_after,
                        retry_limit, retry_delay, retry_backoff, expire_seconds, deletion_seconds,
                        keep_until, policy)
SELECT gen_random_uuid(), (ARRAY['emails', 'reports', 'digest'])[1 + g % 3],
       jsonb_build_object('i', g),
       (CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'completed' END)::pgboss.job_state,
       t - interval '2 seconds', t - interval '1 second', t, t - interval '2 seconds',
       0, 0, false, 900, 604800, now() + interval '14 days', 'standard'
FROM generate_series($1::bigint, $2::bigint) g,
     LATERAL (SELECT now() - (g % 604800) * interval '1 second' - interval '1 minute' AS t) x
"""


def make_schema(url: str, folder: str) -> None:
    """pg-boss's own start() creates its schema and the 3 queues (no jobs run)."""
    here = ROOT / "tests" / "pgboss"
    node = here / folder / "node_modules" / ".bin" / "node"
    scenario = [str(node), str(here / "scenario.mjs"), url, str(here / folder / "boss.mjs")]
    subprocess.run([*scenario, "finished", "0"], check=True, timeout=120, capture_output=True)
    for queue in ("emails", "reports"):
        script = f"""
import {{ pathToFileURL }} from 'node:url'
const mod = (await import(pathToFileURL('{here / folder / "boss.mjs"}').href)).default
const boss = new (mod.PgBoss ?? mod.default)({{ connectionString: '{url}', supervise: false }})
await boss.start(); await boss.createQueue('{queue}'); await boss.stop({{ graceful: false }})
"""
        subprocess.run(
            [str(node), "--input-type=module", "-e", script],
            check=True,
            timeout=120,
            capture_output=True,
        )


async def timed(settings: SidecarSettings, pool: asyncpg.Pool, repeats: int) -> dict[str, float]:
    counts, polls = [], []
    previous = await pgboss.SOURCE.poll(PollContext(settings, pool, None))
    for _ in range(repeats):
        previous.counted = None  # make the count due now
        started = time.perf_counter()
        snap = await pgboss.SOURCE.poll(PollContext(settings, pool, previous))
        polls.append(time.perf_counter() - started)
        assert snap.counted is not None and snap.counted.ok
        counts.append(snap.counted.seconds)
        previous = snap
    return {
        "count_ms": round(statistics.median(counts) * 1000, 2),
        "poll_ms": round(statistics.median(polls) * 1000, 2),
        "indexed": bool(previous.counted and previous.counted.indexed),
    }


async def run(sizes: list[int], repeats: int) -> dict[str, object]:
    pg = LocalPostgres()
    base = pg.start().rsplit("/", 1)[0]
    rows: list[dict[str, object]] = []
    try:
        admin = await asyncpg.connect(f"{base}/postgres")
        for folder in RELEASES.values():
            await admin.execute(f'CREATE DATABASE "bench_{folder}"')
        await admin.close()
        for folder in RELEASES.values():
            make_schema(f"{base}/bench_{folder}", folder)
        filled = 0
        for size in sizes:
            row: dict[str, object] = {"finished_jobs": size}
            for label, folder in RELEASES.items():
                url = f"{base}/bench_{folder}"
                settings = SidecarSettings(database_url=url, statement_timeout=60)
                async with asyncpg.create_pool(
                    url, min_size=1, max_size=2, server_settings=server_settings(settings)
                ) as pool:
                    await pool.execute(HISTORY, filled + 1, size, timeout=600)
                    await pool.execute("VACUUM ANALYZE pgboss.job", timeout=600)
                    row[label] = await timed(settings, pool, repeats)
            filled = size
            scan = row["pg-boss 11 (scan)"]["count_ms"]  # type: ignore[index]
            index = row["pg-boss 12 latest (index)"]["count_ms"]  # type: ignore[index]
            row["scan_over_index"] = round(scan / index, 1)
            row["scan_every_s_at_5pct"] = round(scan / 1000 / 0.05, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        pg.stop()
    return {
        "bench": "pgboss_count",
        "machine": f"{platform.machine()}, {platform.system()}",
        "postgres": "one LocalPostgres, both databases",
        "repeats": repeats,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,3000000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(run([int(s) for s in args.sizes.split(",")], args.repeats))
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("| finished jobs | scan (pg-boss 11) ms | index (pg-boss 12) ms | ratio | scan every |")
    print("|---:|---:|---:|---:|---:|")
    for row in result["rows"]:  # type: ignore[attr-defined]
        scan, index = row["pg-boss 11 (scan)"], row["pg-boss 12 latest (index)"]
        print(
            f"| {row['finished_jobs']:,} | {scan['count_ms']} | {index['count_ms']} "
            f"| {row['scan_over_index']}x | {row['scan_every_s_at_5pct']} s |"
        )


if __name__ == "__main__":
    main()
