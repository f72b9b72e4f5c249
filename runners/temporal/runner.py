"""TemporalJobRunner: the JobRunner interface over Temporal (the Enterprise engine).

A job is a run of the generic job workflow; its `jobs` row is written before the workflow
starts (runner_type 'temporal', external_id = workflow id, external_run_id = run id) and the
workflow's activities keep it current. Recurring jobs are Temporal Schedules; every run they
fire opens its own `jobs` row.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from jobsight.runners import connections
from jobsight.runners.base import RecurringJob, RunnerBase
from jobsight.runners.errors import JobNotFoundError, JobsightError
from jobsight.runners.ids import new_job_id
from jobsight.runners.interface import HandlerConfig, ScheduleOptions, ScheduleResult
from jobsight.runners.registry import HandlerRegistry
from jobsight.runners.service import JobService
from jobsight.runners.status import is_finished
from jobsight.runners.temporal import types as t
from jobsight.runners.temporal.activities import JobActivities
from jobsight.runners.temporal.settings import TemporalSettings
from jobsight.runners.temporal.workflow import JobWorkflow
from jobsight.runners.temporal_access import unreachable
from jobsight.runners.tracing import current_traceparent, in_job_context
from jobsight.runners.validation import check_uuid

log = logging.getLogger("jobsight.temporal")
# The SDK's own grace (after which it cancels running activities) is set out of reach; the
# runner's stop(grace) stops handlers itself, so any grace, longer or shorter, is honoured.
UNBOUNDED_GRACE = timedelta(days=1)
DB_STATEMENT_TIMEOUT_S = 30.0  # each of the engine's own statements (row writes, reads)


class TemporalUnavailableError(JobsightError):
    """Temporal could not be reached or refused a request; nothing of the job was kept: its row
    was withdrawn, so a workflow the server may still have started finds none and ends without
    running the handler (scheduling the job elsewhere is safe).

    `outage`: the failure says Temporal is unreachable or overloaded (a transport error, a
    timeout, UNAVAILABLE), not that it refused this request (a bad argument, no permission).
    """

    def __init__(self, message: str, *, outage: bool = True) -> None:
        super().__init__(message)
        self.outage = outage


class CircuitOpenError(TemporalUnavailableError):
    """The Temporal engine's circuit breaker is open and no fallback is allowed: nothing was
    written; the message says why it opened and when the next probe is (runners/fallback.py)."""


OUTAGE_CODES = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED,
                          RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.CANCELLED,
                          RPCStatusCode.UNKNOWN, RPCStatusCode.INTERNAL})  # fmt: skip


def is_outage(exc: BaseException) -> bool:
    """A failure of Temporal itself (down, slow, overloaded), not a refusal of the request."""
    if isinstance(exc, RPCError):
        return exc.status in OUTAGE_CODES
    return isinstance(exc, (RuntimeError, TimeoutError, OSError))


class SingletonConflictError(JobsightError):
    """A singleton key is held by a running workflow that this database has no waiting or
    running job for (another database on the same namespace, or a job just finishing)."""


# The newest unfinished job a workflow id names (a singleton key's holder): $1 workflow id.
UNFINISHED_OF_WORKFLOW = """SELECT job_id FROM jobs WHERE external_id = $1
                            AND runner_type = 'temporal' AND finished_at IS NULL
                            ORDER BY created_at DESC LIMIT 1"""


def singleton_workflow_id(job_name: str, key: str) -> str:
    """The workflow id of a job with a singleton key: Temporal refuses a second one while the
    first runs."""
    return f"jobsight-{job_name}-key-{key}"


def _key(name: str) -> SearchAttributeKey[str]:
    return SearchAttributeKey.for_keyword(name)


def job_input(config: HandlerConfig, tenant: str, data: dict[str, Any], job_id: str,
              user_id: str, heartbeat_s: float) -> t.JobInput:  # fmt: skip
    retry = config.retry
    return t.JobInput(
        job_name=config.name, tenant=tenant, data=data, job_id=job_id, user_id=user_id,
        retry=t.RetrySpec(retry.max_attempts, retry.backoff_coefficient,
                          retry.initial_interval.total_seconds(),
                          retry.max_interval.total_seconds()),
        timeout_s=config.timeout.total_seconds() if config.timeout else None,
        heartbeat_timeout_s=heartbeat_s,
    )  # fmt: skip


class TemporalJobRunner(RunnerBase[TemporalSettings]):
    runner_type = "temporal"

    def __init__(
        self,
        database_url: str,
        registry: HandlerRegistry | None = None,
        settings: TemporalSettings | None = None,
        *,
        work: bool = True,
    ) -> None:
        super().__init__(database_url, registry, settings, work=work)
        self._pool: asyncpg.Pool | None = None
        self._client: Client | None = None
        self._worker: Worker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._attributes_ready = False
        self._activities: JobActivities | None = None

    @classmethod
    def default_settings(cls) -> TemporalSettings:
        return TemporalSettings()

    # --- connections ------------------------------------------------------------------------

    async def client(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    try:
                        self._client = await asyncio.wait_for(
                            Client.connect(self.settings.address,
                                           namespace=self.settings.namespace,
                                           interceptors=[TracingInterceptor()],
                                           **self.settings.access.client_options()),
                            self.settings.connect_timeout.total_seconds(),
                        )  # fmt: skip
                    except (RuntimeError, TimeoutError, OSError) as exc:
                        raise TemporalUnavailableError(
                            unreachable(self.settings.address, self.settings.access, exc)
                        ) from None
        return self._client

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await connections.create_pool(
                        self._url, tables=("jobs",), min_size=1, max_size=self.settings.pool_size,
                        command_timeout=connections.command_timeout(DB_STATEMENT_TIMEOUT_S),
                        server_settings={"application_name": "jobsight-temporal",
                                         "statement_timeout": f"{DB_STATEMENT_TIMEOUT_S:g}s"},
                    )  # fmt: skip
        return self._pool

    # --- JobRunner --------------------------------------------------------------------------

    async def schedule_job(
        self,
        job_name: str,
        data: dict[str, Any],
        *,
        tenant: uuid.UUID | str,
        options: ScheduleOptions | None = None,
        user_id: uuid.UUID | str | None = None,
    ) -> ScheduleResult:
        opts = options or ScheduleOptions()
        job = self.check_job(job_name, data, tenant, user_id)
        config, tenant_id, user = job.config, job.tenant, job.user
        client = await self.client()
        await self.ensure_search_attributes()
        job_id = new_job_id()
        workflow_id = (singleton_workflow_id(job_name, opts.singleton_key) if opts.singleton_key
                       else f"jobsight-{job_name}-{job_id}")  # fmt: skip
        service = JobService(await self.pool(), max_metadata_bytes=self.settings.max_payload_bytes)
        traceparent = current_traceparent()
        await service.create_job(
            tenant=tenant_id, job_name=job_name, metadata=data, runner_type=self.runner_type,
            user_id=user, job_id=job_id, external_id=workflow_id, run_at=opts.run_at,
            trace_context=traceparent,
        )  # fmt: skip
        delay = None
        if opts.run_at is not None and opts.run_at > datetime.now(UTC):
            delay = opts.run_at - datetime.now(UTC)
        try:
            # The SDK retries an unreachable server for ~10 s whatever the per-try rpc_timeout;
            # the whole start is bounded by rpc_timeout, so a caller (and the breaker) hears of
            # an outage within it.
            async with asyncio.timeout(self.settings.rpc_timeout.total_seconds()):
                with in_job_context(job_id, traceparent):
                    await client.start_workflow(
                        t.WORKFLOW_NAME,
                        job_input(config, str(tenant_id), data, str(job_id), str(user),
                                  self.settings.heartbeat_timeout.total_seconds()),
                        id=workflow_id,
                        task_queue=self.settings.task_queue,
                        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                        start_delay=delay,
                        search_attributes=TypedSearchAttributes([
                            SearchAttributePair(_key("JobsightJobName"), job_name),
                            SearchAttributePair(_key("JobsightTenant"), str(tenant_id)),
                            SearchAttributePair(_key("JobsightJobId"), str(job_id)),
                        ]),
                        rpc_timeout=self.settings.rpc_timeout,
                    )  # fmt: skip
        except WorkflowAlreadyStartedError:
            await self._forget(job_id)
            existing = await (await self.pool()).fetchval(UNFINISHED_OF_WORKFLOW, workflow_id)
            if existing is None:
                raise SingletonConflictError(
                    f"singleton key {opts.singleton_key!r} is held by workflow {workflow_id},"
                    " which has no unfinished job in this database"
                ) from None
            return ScheduleResult(existing, workflow_id, duplicate=True)
        except (RPCError, RuntimeError, TimeoutError) as exc:
            what = "no answer within the RPC timeout" if isinstance(exc, TimeoutError) else exc
            if not await self._forget(job_id):
                # The start did reach Temporal: its first attempt has taken the row already.
                log.warning("job %s: Temporal answered late (%s) but runs it", job_id, what)
                return ScheduleResult(job_id, workflow_id)
            raise TemporalUnavailableError(
                f"Temporal refused the job: {what}", outage=is_outage(exc)
            ) from None
        # The run id is recorded by the job's first attempt (its activity has it): not written here,
        # one statement fewer per job; until then the row names the workflow (external_id).
        return ScheduleResult(job_id, workflow_id)

    async def _forget(self, job_id: uuid.UUID) -> bool:
        """Removes the row of a job whose start failed (scheduling is all or nothing). False when
        the row is no longer waiting: the start reached Temporal after all and an attempt runs.
        Deleted, a workflow the server may yet start finds no row and ends (JobWithdrawn)."""
        deleted = await (await self.pool()).fetchval(
            "DELETE FROM jobs WHERE job_id = $1 AND status = 'queued' RETURNING true", job_id
        )
        return bool(deleted)

    async def create_schedule(self, recurring: RecurringJob) -> ScheduleResult:
        """A Temporal Schedule; every run it fires opens its own `jobs` row."""
        job, recurrence, schedule_id = recurring.job, recurring.recurrence, uuid.uuid4()
        config, job_name = job.config, job.config.name
        spec = (ScheduleSpec(cron_expressions=[recurrence.cron]) if recurrence.cron
                else ScheduleSpec(intervals=[ScheduleIntervalSpec(every=recurrence.every)]))  # type: ignore[arg-type]  # fmt: skip
        action = ScheduleActionStartWorkflow(
            t.WORKFLOW_NAME,
            job_input(config, str(job.tenant), job.data, "", str(job.user),
                      self.settings.heartbeat_timeout.total_seconds()),
            id=f"jobsight-{job_name}-schedule-{schedule_id}",
            task_queue=self.settings.task_queue,
        )  # fmt: skip
        try:
            await (await self.client()).create_schedule(
                f"jobsight-schedule-{schedule_id}", Schedule(action=action, spec=spec),
                rpc_timeout=self.settings.rpc_timeout,
            )  # fmt: skip
        except (RPCError, RuntimeError, TimeoutError) as exc:
            raise TemporalUnavailableError(
                f"Temporal refused the schedule: {exc}", outage=is_outage(exc)
            ) from None
        return ScheduleResult(schedule_id, f"jobsight-schedule-{schedule_id}")

    async def cancel_job(self, job_id: uuid.UUID | str) -> bool:
        target = check_uuid("job_id", job_id)
        client = await self.client()
        try:
            job = await JobService(await self.pool()).get_job(target)
        except JobNotFoundError:
            try:  # a recurring schedule's id
                await client.get_schedule_handle(f"jobsight-schedule-{target}").delete()
                return True
            except RPCError:
                return False
        if job.runner_type != self.runner_type or is_finished(job.status):
            return False
        handle = client.get_workflow_handle(job.external_id or "")
        try:
            await handle.cancel(rpc_timeout=self.settings.rpc_timeout)
        except RPCError as exc:
            raise TemporalUnavailableError(
                f"Temporal refused the cancel: {exc}", outage=is_outage(exc)
            ) from None
        return True

    # --- worker -----------------------------------------------------------------------------

    async def ensure_search_attributes(self) -> None:
        """Registers jobsight's Keyword search attributes when the namespace lacks them (once
        per runner: a producer that never starts a worker needs them too)."""
        if self._attributes_ready:
            return
        client = await self.client()
        ns = self.settings.namespace
        try:
            listed = await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=ns), timeout=self.settings.rpc_timeout
            )
            keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
            missing = {
                name: keyword
                for name in t.SEARCH_ATTRIBUTES
                if name not in listed.custom_attributes
            }
            if missing:
                await client.operator_service.add_search_attributes(
                    AddSearchAttributesRequest(namespace=ns, search_attributes=missing),
                    timeout=self.settings.rpc_timeout,
                )
                log.info("registered search attributes %s", ", ".join(missing))
        except (RPCError, RuntimeError, TimeoutError) as exc:
            raise TemporalUnavailableError(
                f"Temporal refused the search attributes: {exc}", outage=is_outage(exc)
            ) from None
        self._attributes_ready = True

    async def start(self) -> None:
        client = await self.client()
        pool = await self.pool()
        await self.ensure_search_attributes()
        if not self._work or not len(self.registry) or self._worker is not None:
            return
        activities = JobActivities(pool, self.registry, client, self.settings.worker_version)
        self._activities = activities
        self._worker = Worker(
            client,
            task_queue=self.settings.task_queue,
            workflows=[JobWorkflow],
            # The sandbox re-imports what a workflow module imports, for every workflow run; C
            # extensions such as asyncpg must not be loaded twice (it crashes the process), and
            # the types crossing the boundary (dataclasses and names, no workflow code) need no
            # isolation: re-made per run, they were a fifth of the worker's time.
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_modules(
                    "asyncpg", "opentelemetry", "jobsight.runners.temporal.types"
                )
            ),
            activities=[activities.open_job, activities.run_handler, activities.finish_job],
            max_concurrent_activities=self.settings.max_concurrent_activities,
            # The worker's Build ID is the version it records on its jobs (the canary analysis
            # compares versions), and the SDK need not hash every loaded module to make one up.
            build_id=self.settings.worker_version,
            # stop(grace) decides when running handlers are stopped, not the SDK's own timer.
            graceful_shutdown_timeout=UNBOUNDED_GRACE,
        )
        self._worker_task = asyncio.create_task(self._worker.run(), name="temporal-worker")

    async def stop_worker(self, grace: float) -> None:
        """The worker stops polling at once; running handlers get `grace` seconds, then are
        stopped: their attempt ends as failed ("worker stopped") and Temporal retries it on
        another worker, within the job's retry policy."""
        if self._worker is None:
            return
        shutdown = asyncio.create_task(self._worker.shutdown(), name="temporal-worker-shutdown")
        done, _ = await asyncio.wait({shutdown}, timeout=grace)
        if not done and self._activities is not None:
            stopped = self._activities.stop_running()
            log.info("stopped %d running handler(s) after the %.1f s grace", stopped, grace)
        await asyncio.gather(shutdown, return_exceptions=True)
        if self._worker_task is not None:
            await asyncio.gather(self._worker_task, return_exceptions=True)
        self._worker = self._worker_task = None
        self._activities = None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
