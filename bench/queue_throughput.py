"""Queue throughput: jobsight pgqueue against its peers on one PostgreSQL, in one run.

Peers: jobsight pgqueue (with its jobs-table bookkeeping), PgQueuer (asyncpg driver, at several
batch sizes, the best one kept), procrastinate, pg-boss 12 on Node 22, the raw-SQL ceiling, and
the ceiling without the `job_details` row (what that row costs).
Each gets fresh databases on the same server and its worker in its own process. Measured:
  drain      N no-op jobs enqueued (batches of 1,000), then a worker starts and drains them
  steady     a producer sends batches of 100 for a fixed time while the worker consumes
  latency    single sends one after another on an idle queue (p50 / p99)
  start-up   worker process spawn -> consuming; RSS: the worker's peak resident memory
  CPU        during the drain, CPU time per job of the worker process and of the PostgreSQL
             server (all its processes; only when the benchmark started the server itself); during
             the enqueue, the producer's and the server's CPU time per job
  WAL        bytes of write-ahead log per job the server wrote during the enqueue and the drain
             (what durable commits must flush)

The machine is noisy, so every variant is measured in several interleaved rounds and the median
of each figure is reported (procrastinate, some 40 times slower than the rest, gets one round).

The headline runs with durable commits (`--durable`: fsync and synchronous_commit on, as in
production); without it the cluster is the fast throwaway one (fsync, full_page_writes and
synchronous_commit off), kept as a second table.

Usage: python -m bench.queue_throughput [--durable] [--jobs N] [--steady-seconds S] [--rounds R]
       [--peers a,b] [--output PATH]
Writes bench/results/queue_throughput.json (--durable) or queue_throughput_fast.json (medians,
every round's figures, and the per-round ratios of jobsight's best variant to PgQueuer's) and
prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from jobsight.devstack.localstack import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "queue_throughput.json"
RESULTS_FAST = ROOT / "bench" / "results" / "queue_throughput_fast.json"
NODE = ROOT / "bench" / "node" / "node_modules" / ".bin" / "node"
PY = sys.executable
DRAIN_TIMEOUT_S = 240.0
LATENCY_SENDS = 1000


@dataclass(frozen=True)
class Peer:
    name: str
    variant: str
    client: list[str]  # + command, url, args
    worker: list[str]  # + url (and variant args), appended by worker_cmd
    completed_sql: str  # jobs completed so far; or remaining jobs when `remaining` is set
    remaining: bool = False

    def worker_cmd(self, url: str) -> list[str]:
        return [part.replace("{url}", url) for part in self.worker]


NO_DETAILS = "raw-sql without job_details"


def peers() -> list[Peer]:
    # Completed jobsight jobs leave the queue table: what remains there is the work left.
    jobsight_left = "SELECT count(*) FROM pgqueue.job"
    found = [
        Peer("jobsight", f"concurrency {concurrency}, batch {batch}",
             [PY, "-m", "bench.peers.jobsight_peer"],
             [PY, "-m", "jobsight", "worker", "--handlers",
              "bench.peers.jobsight_peer:registry", "--concurrency", str(concurrency),
              "--batch-size", str(batch), "--database-url", "{url}"],
             jobsight_left, remaining=True)
        for concurrency, batch in ((1000, 500), (2000, 1000))
    ]  # fmt: skip
    for loops, batch in ((1, 500), (2, 500), (1, 1000), (2, 1000)):
        found.append(
            Peer("raw-sql ceiling", f"{loops} loop(s), batch {batch}",
                 [PY, "-m", "bench.peers.raw_sql_peer"],
                 [PY, "-m", "bench.peers.raw_sql_peer", "worker", "{url}", str(loops), str(batch)],
                 jobsight_left, remaining=True)
        )  # fmt: skip
    # The ceiling's best variant again without the `job_details` row: what that row costs.
    found.append(
        Peer(NO_DETAILS, "2 loop(s), batch 1000", [PY, "-m", "bench.peers.raw_sql_peer"],
             [PY, "-m", "bench.peers.raw_sql_peer", "worker", "{url}", "2", "1000", "no-details"],
             jobsight_left, remaining=True)
    )  # fmt: skip
    for batch in (100, 250, 500, 1000):
        found.append(
            Peer(
                "PgQueuer",
                f"batch {batch}",
                [PY, "-m", "bench.peers.pgqueuer_peer"],
                [PY, "-m", "bench.peers.pgqueuer_peer", "worker", "{url}", str(batch)],
                "SELECT count(*) FROM pgqueuer",
                remaining=True,
            )
        )
    found.append(
        Peer(
            "procrastinate",
            "concurrency 50",
            [PY, "-m", "bench.peers.procrastinate_peer"],
            [PY, "-m", "bench.peers.procrastinate_peer", "worker", "{url}", "50"],
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'",
        )
    )
    for batch in (50, 200):
        found.append(
            Peer("pg-boss 12", f"batch {batch}", [str(NODE), "bench/node/pgboss_peer.mjs"],
                 [str(NODE), "bench/node/pgboss_peer.mjs", "worker", "{url}", str(batch)],
                 "SELECT count(*) FROM pgboss.job WHERE name = 'noop' AND state = 'completed'")
        )  # fmt: skip
    return found


SINGLE_ROUND = {"procrastinate"}


@dataclass
class Result:
    name: str
    variant: str
    enqueue_jobs_per_s: float = 0.0
    drain_jobs_per_s: float = 0.0
    end_to_end_jobs_per_s: float = 0.0
    steady_jobs_per_s: float = 0.0
    steady_enqueued_per_s: float = 0.0
    enqueue_p50_ms: float = 0.0
    enqueue_p99_ms: float = 0.0
    worker_startup_ms: float = 0.0
    worker_rss_mb: float = 0.0
    worker_cpu_us_per_job: float = 0.0
    db_cpu_us_per_job: float = 0.0
    enqueue_client_cpu_us_per_job: float = 0.0
    enqueue_db_cpu_us_per_job: float = 0.0
    enqueue_wal_bytes_per_job: float = 0.0
    drain_wal_bytes_per_job: float = 0.0
    errors: list[str] = field(default_factory=list)


def with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def fresh_db(server: str, peer: Peer) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = with_db(server, name)
    await run_json([*peer.client, "setup", url], expect_json=False)
    return url


async def run_json(cmd: list[str], expect_json: bool = True) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), DRAIN_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {err.decode()[-800:]}")
    if not expect_json:
        return {}
    return json.loads(out.decode().strip().splitlines()[-1])


class Worker:
    """A peer's worker process: spawn, wait for "ready", sample memory, stop."""

    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd
        self.peak_rss = 0
        self.startup_ms = 0.0

    async def __aenter__(self) -> Worker:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        self.proc = await asyncio.create_subprocess_exec(
            *self.cmd, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
            if not line:
                raise RuntimeError(f"worker exited before it was ready: {' '.join(self.cmd[:4])}")
            if line.strip() == b"ready" or line.startswith(b"worker running"):
                break
        self.startup_ms = (time.perf_counter() - started) * 1000
        self.ps = psutil.Process(self.proc.pid)
        self.sample()
        return self

    def sample(self) -> None:
        try:
            procs = [self.ps, *self.ps.children(recursive=True)]
            self.peak_rss = max(self.peak_rss, sum(p.memory_info().rss for p in procs))
        except psutil.Error:
            pass

    def cpu(self) -> dict[int, float]:
        return process_tree_cpu(self.ps)

    async def __aexit__(self, *exc: object) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def process_tree_cpu(root: psutil.Process | None) -> dict[int, float]:
    """User + system CPU seconds by pid: of each process of the tree alive now, the root's
    including what its children that have exited used (the kernel adds their time to their
    parent's when it reaps them: a server's backend that served a client now gone still counts)."""
    if root is None:
        return {}
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {}
    seconds = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        seconds[proc.pid] = times.user + times.system
        if proc is root:
            seconds[proc.pid] += times.children_user + times.children_system
    return seconds


def cpu_used_s(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings. A direct child of the root that exited in between
    counts whole, through the root (a backend that lived only for the work, as a client's
    does, exactly; a longer-lived one slightly over), a grandchild not at all."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


async def wal_position(conn: asyncpg.Connection) -> str:
    return str(await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text"))


async def wal_since(conn: asyncpg.Connection, start: str) -> float:
    """WAL bytes the whole server wrote since `start` (the work measured, plus whatever
    autovacuum or checkpoints did meanwhile: the cost the work brings with it)."""
    query = "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::text::pg_lsn)"
    return float(await conn.fetchval(query, start))


async def completed(conn: asyncpg.Connection, peer: Peer, expected: int) -> int:
    value = await conn.fetchval(peer.completed_sql)
    return expected - value if peer.remaining else value


async def measure(
    server: str, peer: Peer, jobs: int, steady_s: float, db: psutil.Process | None
) -> Result:
    result = Result(peer.name, peer.variant)
    # Latency: single sends on an idle queue.
    url = await fresh_db(server, peer)
    latency = await run_json([*peer.client, "latency", url, str(LATENCY_SENDS)])
    result.enqueue_p50_ms, result.enqueue_p99_ms = latency["p50_ms"], latency["p99_ms"]
    # Drain: N queued jobs, then a worker.
    url = await fresh_db(server, peer)
    conn = await asyncpg.connect(url)
    try:
        wal, db_cpu = await wal_position(conn), process_tree_cpu(db)
        enqueue = await run_json([*peer.client, "enqueue", url, str(jobs)])
        result.enqueue_jobs_per_s = jobs / enqueue["seconds"]
        result.enqueue_client_cpu_us_per_job = enqueue["cpu_seconds"] / jobs * 1e6
        result.enqueue_db_cpu_us_per_job = (
            cpu_used_s(db_cpu, process_tree_cpu(db)) / jobs * 1e6 if db is not None else 0.0
        )
        result.enqueue_wal_bytes_per_job = await wal_since(conn, wal) / jobs
        async with Worker(peer.worker_cmd(url)) as worker:
            wal = await wal_position(conn)
            worker_cpu, db_cpu = worker.cpu(), process_tree_cpu(db)
            started = time.perf_counter()
            deadline = started + DRAIN_TIMEOUT_S
            while await completed(conn, peer, jobs) < jobs:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"drain timed out after {DRAIN_TIMEOUT_S} s")
                worker.sample()
                await asyncio.sleep(0.02)
            drain_s = time.perf_counter() - started
            worker_s = cpu_used_s(worker_cpu, worker.cpu())
            db_s = cpu_used_s(db_cpu, process_tree_cpu(db))
            result.drain_wal_bytes_per_job = await wal_since(conn, wal) / jobs
            worker.sample()
        result.drain_jobs_per_s = jobs / drain_s
        result.end_to_end_jobs_per_s = jobs / (enqueue["seconds"] + drain_s)
        result.worker_startup_ms = worker.startup_ms
        result.worker_rss_mb = worker.peak_rss / 2**20
        result.worker_cpu_us_per_job = worker_s / jobs * 1e6
        result.db_cpu_us_per_job = db_s / jobs * 1e6 if db is not None else 0.0
    finally:
        await conn.close()
    # Steady: producer and consumer together.
    url = await fresh_db(server, peer)
    conn = await asyncpg.connect(url)
    try:
        async with Worker(peer.worker_cmd(url)):
            started = time.perf_counter()
            produced = await run_json([*peer.client, "produce", url, str(steady_s)])
            window = time.perf_counter() - started
            done = await completed(conn, peer, produced["enqueued"])
        result.steady_jobs_per_s = done / window
        result.steady_enqueued_per_s = produced["enqueued"] / window
    finally:
        await conn.close()
    return result


async def jobsight_start_call_ms(server: str) -> float:
    """In-process: how long PgQueueJobRunner.start() takes (pool, registration, LISTEN)."""
    from bench.peers.jobsight_peer import registry
    from jobsight.runners.pgqueue import PgQueueJobRunner

    url = await fresh_db(server, peers()[0])
    samples = []
    for _ in range(10):
        runner = PgQueueJobRunner(url, registry)
        started = time.perf_counter()
        await runner.start()
        samples.append((time.perf_counter() - started) * 1000)
        await runner.stop()
    return statistics.median(samples)


def median_result(rounds: list[Result]) -> Result:
    """Each figure's median over the rounds that succeeded (errors kept when all failed)."""
    ok = [r for r in rounds if not r.errors]
    if not ok:
        return rounds[0]
    merged = Result(ok[0].name, ok[0].variant)
    for name in asdict(merged):
        if name not in ("name", "variant", "errors"):
            setattr(merged, name, statistics.median(getattr(r, name) for r in ok))
    return merged


def best(results: list[Result], name: str) -> Result | None:
    mine = [r for r in results if r.name == name and not r.errors]
    return max(mine, key=lambda r: r.end_to_end_jobs_per_s, default=None)


def database_bound_jobs_per_s(result: Result, cores: int) -> float:
    """The end-to-end rate a peer could reach if its own processes cost nothing: PostgreSQL's
    CPU per job alone, the enqueue's serial (one producer), the drain's spread over every core."""
    us_per_job = result.enqueue_db_cpu_us_per_job + result.db_cpu_us_per_job / cores
    return 1e6 / us_per_job if us_per_job > 0 else 0.0


def summarise(results: list[Result], start_call_ms: float, cores: int) -> dict:
    js, pgq, raw = (
        best(results, "jobsight"),
        best(results, "PgQueuer"),
        best(results, "raw-sql ceiling"),
    )
    ratios, targets = {}, {}
    if js:
        targets = {
            "end_to_end_jobs_per_s >= 10000": js.end_to_end_jobs_per_s >= 10_000,
            "enqueue_p50_ms <= 2": js.enqueue_p50_ms <= 2,
            "worker_start_call_ms < 100": start_call_ms < 100,
            "worker_rss_mb < 50": js.worker_rss_mb < 50,
        }
        if pgq:
            ratios["jobsight / PgQueuer (end to end)"] = (
                js.end_to_end_jobs_per_s / pgq.end_to_end_jobs_per_s
            )
            ratios["jobsight / PgQueuer (drain)"] = js.drain_jobs_per_s / pgq.drain_jobs_per_s
            ratios["jobsight / PgQueuer (steady)"] = js.steady_jobs_per_s / pgq.steady_jobs_per_s
            targets[">= 2x PgQueuer end to end"] = ratios["jobsight / PgQueuer (end to end)"] >= 2
            if js.db_cpu_us_per_job > 0:  # the server's CPU was measured (it was ours)
                ratios["bound: jobsight's PostgreSQL CPU alone / PgQueuer (end to end)"] = (
                    database_bound_jobs_per_s(js, cores) / pgq.end_to_end_jobs_per_s
                )
        if raw:
            ratios["jobsight / raw-SQL ceiling (end to end)"] = (
                js.end_to_end_jobs_per_s / raw.end_to_end_jobs_per_s
            )
            ratios["jobsight / raw-SQL ceiling (drain)"] = (
                js.drain_jobs_per_s / raw.drain_jobs_per_s
            )
            if pgq:  # how far the same row changes go with no per-job work at all
                ratios["raw-SQL ceiling / PgQueuer (end to end)"] = (
                    raw.end_to_end_jobs_per_s / pgq.end_to_end_jobs_per_s
                )
        lean = best(results, NO_DETAILS)
        if lean and pgq:  # and without the job_details row
            ratios["raw-SQL without the job_details row / PgQueuer (end to end)"] = (
                lean.end_to_end_jobs_per_s / pgq.end_to_end_jobs_per_s
            )
        for other in ("procrastinate", "pg-boss 12"):
            peer = best(results, other)
            if peer:
                ratios[f"jobsight / {other} (end to end)"] = (
                    js.end_to_end_jobs_per_s / peer.end_to_end_jobs_per_s
                )
    return {"ratios": {k: round(v, 2) for k, v in ratios.items()}, "targets_met": targets}


def per_round_ratios(rounds: dict[tuple[str, str], list[Result]]) -> dict[str, list[float]]:
    """Round by round, jobsight's best variant over PgQueuer's best (end to end and drain):
    the spread the medians hide. Rounds where either failed are left out."""
    found: dict[str, list[float]] = {"end to end": [], "drain": []}
    count = max((len(v) for v in rounds.values()), default=0)
    for n in range(count):

        def best_of(name: str, n: int = n) -> Result | None:
            return best([r[n] for (peer, _), r in rounds.items() if peer == name and len(r) > n],
                        name)  # fmt: skip

        js, pgq = best_of("jobsight"), best_of("PgQueuer")
        if js and pgq:
            found["end to end"].append(
                round(js.end_to_end_jobs_per_s / pgq.end_to_end_jobs_per_s, 2)
            )
            found["drain"].append(round(js.drain_jobs_per_s / pgq.drain_jobs_per_s, 2))
    return found


def table(results: list[Result]) -> str:
    head = (
        "| peer | variant | end to end jobs/s | drain jobs/s | steady jobs/s"
        " | enqueue p50 / p99 ms | worker start-up ms | worker RSS MB"
        " | enqueue CPU us/job: producer + PostgreSQL | drain CPU us/job: worker + PostgreSQL"
        " | WAL bytes/job: enqueue + drain |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = [
        f"| {r.name} | {r.variant} | {r.end_to_end_jobs_per_s:,.0f} | {r.drain_jobs_per_s:,.0f} | "
        f"{r.steady_jobs_per_s:,.0f} | {r.enqueue_p50_ms:.2f} / {r.enqueue_p99_ms:.2f} | "
        f"{r.worker_startup_ms:,.0f} | {r.worker_rss_mb:.0f} | "
        f"{r.enqueue_client_cpu_us_per_job:.0f} + {r.enqueue_db_cpu_us_per_job:.0f} | "
        f"{r.worker_cpu_us_per_job:.0f} + {r.db_cpu_us_per_job:.0f} | "
        f"{r.enqueue_wal_bytes_per_job:,.0f} + {r.drain_wal_bytes_per_job:,.0f} |"
        if not r.errors
        else f"| {r.name} | {r.variant} | failed: {r.errors[0][:80]} | | | | | | | | |"
        for r in results
    ]
    return "\n".join([head, *rows])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--steady-seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median kept)")
    parser.add_argument("--peers", help="comma-separated peer names (default: all)")
    parser.add_argument("--durable", action="store_true", help="fsync and synchronous_commit on")
    parser.add_argument("--output", type=Path, help="default: by --durable, see above")
    args = parser.parse_args()
    output = args.output or (RESULTS if args.durable else RESULTS_FAST)
    selected = [p for p in peers() if not args.peers or p.name in args.peers.split(",")]
    pg = None
    server = os.environ.get("DATABASE_URL", "")
    if not server:
        pg = LocalPostgres(database="bench", durable=args.durable)
        server = pg.start()
    server_pid = pg.server_pid() if pg is not None else None
    db = psutil.Process(server_pid) if server_pid else None
    try:
        admin = await asyncpg.connect(server)
        pg_version = await admin.fetchval("SHOW server_version")
        pg_settings = dict(await admin.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN"
            " ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'wal_level')"
        ))  # fmt: skip
        await admin.close()
        rounds: dict[tuple[str, str], list[Result]] = {}
        for round_no in range(1, args.rounds + 1):
            for peer in selected:
                if round_no > 1 and peer.name in SINGLE_ROUND:
                    continue
                print(f"-- round {round_no}: {peer.name} ({peer.variant})", flush=True)
                try:
                    result = await measure(server, peer, args.jobs, args.steady_seconds, db)
                except Exception as exc:  # a failing peer is recorded, not fatal to the run
                    result = Result(peer.name, peer.variant, errors=[str(exc)])
                rounds.setdefault((peer.name, peer.variant), []).append(result)
                print(table([result]).splitlines()[-1], flush=True)
        results = [median_result(per_round) for per_round in rounds.values()]
        start_call_ms = await jobsight_start_call_ms(server)
    finally:
        if pg is not None:
            pg.stop()
    report = {
        "benchmark": "queue_throughput",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cores": os.cpu_count(),
                    "memory_gb": round(psutil.virtual_memory().total / 2**30),
                    "python": platform.python_version(), "postgres": pg_version,
                    "postgres_settings": pg_settings},
        "settings": {"jobs": args.jobs, "steady_seconds": args.steady_seconds,
                     "latency_sends": LATENCY_SENDS, "rounds": args.rounds,
                     "single_round": sorted(SINGLE_ROUND), "figures": "median over rounds"},
        "jobsight_worker_start_call_ms": round(start_call_ms, 1),
        "results": [asdict(r) for r in results],
        "rounds": {f"{name} ({variant})": [asdict(r) for r in per_round]
                   for (name, variant), per_round in rounds.items()},
        "per_round_ratios": per_round_ratios(rounds),
        **summarise(results, start_call_ms, os.cpu_count() or 1),
    }  # fmt: skip
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table(results))
    print(
        json.dumps(
            {k: report[k] for k in ("ratios", "targets_met", "jobsight_worker_start_call_ms")},
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
