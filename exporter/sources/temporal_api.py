"""How the temporal source talks to Temporal, in one of two ways:

- over gRPC with the Temporal SDK, at TEMPORAL_ADDRESS (any server release);
- over the frontend's HTTP API, at JOBSIGHT_TEMPORAL_HTTP_ADDRESS (Temporal 1.22 or later, the
  frontend's `httpPort`), with the aiohttp the sidecar already runs: the SDK (its native bridge
  and the API's protobuf modules, about 25 MB resident) is never loaded.

Both give every answer in the protobuf JSON mapping (the HTTP API's own form; the SDK's messages
through json_format), so the source reads one form whichever way it came. Every call is bounded
by the poll timeout and is not retried: a poll during an outage fails at once and says so.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from jobsight.runners.temporal_access import TemporalAccess, unreachable

if TYPE_CHECKING:
    import aiohttp

Answer = dict[str, Any]
WORKFLOW_TASKS, ACTIVITY_TASKS = "TASK_QUEUE_TYPE_WORKFLOW", "TASK_QUEUE_TYPE_ACTIVITY"
ENHANCED_MODE = "DESCRIBE_TASK_QUEUE_MODE_ENHANCED"
MAX_ANSWER_BYTES = 8 * 1024 * 1024  # the largest answer read (a describe is a few KB)


class TemporalApiError(Exception):
    """A call Temporal refused or did not answer; the text names the setting to look at."""


class NotFound(TemporalApiError):
    """Temporal has no such schedule or workflow (gone since it was listed, for one)."""


class NotAddressable(TemporalApiError):
    """An id the HTTP API cannot put in its path: Temporal's router answers 404 for any id with a
    `/` in it, escaped or not (gRPC reads it)."""


class TemporalApi(Protocol):
    async def count(self, query: str, rpc_timeout: float) -> Answer: ...

    async def describe_task_queue(
        self, name: str, task_type: str, enhanced: bool, rpc_timeout: float
    ) -> Answer: ...

    async def schedule_ids(self, limit: int, rpc_timeout: float) -> list[str]: ...

    async def describe_schedule(self, schedule_id: str, rpc_timeout: float) -> Answer: ...

    async def describe_workflow(
        self, workflow_id: str, run_id: str, rpc_timeout: float
    ) -> Answer: ...

    async def close(self) -> None: ...


class GrpcApi:
    """The SDK's raw workflow service (no retries), answers as protobuf JSON."""

    def __init__(self, client: Any, address: str, access: TemporalAccess) -> None:
        self._service = client.workflow_service
        self._namespace: str = client.namespace
        self._address, self._access = address, access

    async def _call(self, method: str, request: Any, rpc_timeout: float) -> Answer:
        from google.protobuf.json_format import MessageToDict
        from temporalio.service import RPCError, RPCStatusCode

        call = getattr(self._service, method)
        try:
            answer = await call(request, retry=False, timeout=timedelta(seconds=rpc_timeout))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFound(str(exc)) from None
            if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise TemporalApiError(unreachable(self._address, self._access, exc)) from None
            raise
        return MessageToDict(answer)

    async def count(self, query: str, rpc_timeout: float) -> Answer:
        from temporalio.api.workflowservice.v1 import CountWorkflowExecutionsRequest

        request = CountWorkflowExecutionsRequest(namespace=self._namespace, query=query)
        return await self._call("count_workflow_executions", request, rpc_timeout)

    async def describe_task_queue(
        self, name: str, task_type: str, enhanced: bool, rpc_timeout: float
    ) -> Answer:
        from temporalio.api.enums.v1 import DescribeTaskQueueMode, TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        kind = TaskQueueType.Value(task_type)
        request = DescribeTaskQueueRequest(
            namespace=self._namespace,
            task_queue=TaskQueue(name=name),
            report_stats=True,
            report_pollers=True,
        )
        if enhanced:
            request.api_mode = DescribeTaskQueueMode.Value(ENHANCED_MODE)
            request.task_queue_types.append(kind)
        else:
            request.task_queue_type = kind
        return await self._call("describe_task_queue", request, rpc_timeout)

    async def schedule_ids(self, limit: int, rpc_timeout: float) -> list[str]:
        from temporalio.api.workflowservice.v1 import ListSchedulesRequest

        request = ListSchedulesRequest(namespace=self._namespace, maximum_page_size=limit)
        answer = await self._call("list_schedules", request, rpc_timeout)
        return schedule_ids_of(answer)[:limit]

    async def describe_schedule(self, schedule_id: str, rpc_timeout: float) -> Answer:
        from temporalio.api.workflowservice.v1 import DescribeScheduleRequest

        request = DescribeScheduleRequest(namespace=self._namespace, schedule_id=schedule_id)
        return await self._call("describe_schedule", request, rpc_timeout)

    async def describe_workflow(self, workflow_id: str, run_id: str, rpc_timeout: float) -> Answer:
        from temporalio.api.common.v1 import WorkflowExecution
        from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest

        request = DescribeWorkflowExecutionRequest(
            namespace=self._namespace,
            execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        )
        return await self._call("describe_workflow_execution", request, rpc_timeout)

    async def close(self) -> None:
        return None  # the SDK's client has nothing to close


class HttpApi:
    """Temporal's HTTP API (`/api/v1/namespaces/{namespace}/...`) over one aiohttp session."""

    def __init__(self, address: str, namespace: str, access: TemporalAccess) -> None:
        import aiohttp

        self.address = address
        self._access = access
        self._ssl = access.ssl_context() if access.uses_tls else True
        scheme = "https" if access.uses_tls else "http"
        self._base = f"{scheme}://{address}/api/v1/namespaces/{quote(namespace, safe='')}"
        headers = {"Accept": "application/json", "temporal-namespace": namespace}
        if access.api_key:
            headers["Authorization"] = f"Bearer {access.api_key}"
        self._session = aiohttp.ClientSession(headers=headers, raise_for_status=False)

    def __repr__(self) -> str:  # never the headers: they hold the API key
        return f"HttpApi({self.address!r})"

    async def _get(self, path: str, params: dict[str, str], rpc_timeout: float) -> Answer:
        import aiohttp

        where = f"Temporal's HTTP API at {self.address}"
        try:
            async with self._session.get(
                f"{self._base}/{path}",
                params=params,
                ssl=self._ssl,
                server_hostname=self._access.tls_server_name or None,
                timeout=aiohttp.ClientTimeout(total=rpc_timeout),
            ) as response:
                body = await _read_capped(response)
                status = response.status
        except TimeoutError:
            raise TemporalApiError(f"{where}: no answer within {rpc_timeout:g}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            if "Bad status line" in str(exc):
                raise TemporalApiError(
                    f"JOBSIGHT_TEMPORAL_HTTP_ADDRESS: {self.address} does not answer in HTTP/1.1 "
                    "(is it the gRPC port? the HTTP API is the frontend's httpPort, 7243 by "
                    "default)"
                ) from None
            text = unreachable(self.address, self._access, exc)
            raise TemporalApiError(_renamed(text)) from None
        if status != 200:
            if status == 404 and _not_found_failure(body):
                raise NotFound(f"{where}: no such {path}")
            raise TemporalApiError(_refusal(where, status, body))
        try:
            answer = json.loads(body)
        except ValueError:
            raise TemporalApiError(f"{where}: answered {path} with something not JSON") from None
        if not isinstance(answer, dict):
            raise TemporalApiError(f"{where}: answered {path} with something not an object")
        return answer

    async def count(self, query: str, rpc_timeout: float) -> Answer:
        return await self._get("workflow-count", {"query": query}, rpc_timeout)

    async def describe_task_queue(
        self, name: str, task_type: str, enhanced: bool, rpc_timeout: float
    ) -> Answer:
        params = {"reportStats": "true", "reportPollers": "true"}
        if enhanced:
            params |= {"apiMode": ENHANCED_MODE, "taskQueueTypes": task_type}
        else:
            params["taskQueueType"] = task_type
        return await self._get(f"task-queues/{_segment(name)}", params, rpc_timeout)

    async def schedule_ids(self, limit: int, rpc_timeout: float) -> list[str]:
        answer = await self._get("schedules", {"maximumPageSize": str(limit)}, rpc_timeout)
        return schedule_ids_of(answer)[:limit]

    async def describe_schedule(self, schedule_id: str, rpc_timeout: float) -> Answer:
        return await self._get(f"schedules/{_segment(schedule_id)}", {}, rpc_timeout)

    async def describe_workflow(self, workflow_id: str, run_id: str, rpc_timeout: float) -> Answer:
        path = f"workflows/{_segment(workflow_id)}"
        return await self._get(path, {"execution.runId": run_id}, rpc_timeout)

    async def close(self) -> None:
        await self._session.close()


def _segment(value: str) -> str:
    if "/" in value:
        raise NotAddressable(f"{value!r} has a '/', which Temporal's HTTP API cannot address")
    return quote(value, safe="")


def _not_found_failure(body: bytes) -> bool:
    """Temporal's own not-found answer (a NotFoundFailure), not its router's bare 404."""
    try:
        details = json.loads(body).get("details") or []
        return any("NotFoundFailure" in str(d.get("@type", "")) for d in details)
    except (ValueError, AttributeError):
        return False


def schedule_ids_of(answer: Answer) -> list[str]:
    return [str(s["scheduleId"]) for s in answer.get("schedules", []) if s.get("scheduleId")]


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise TemporalApiError(f"an answer over {MAX_ANSWER_BYTES // 2**20} MB; not read")
        chunks.append(chunk)
    return b"".join(chunks)


def _renamed(text: str) -> str:
    """The connect error's setting, for the HTTP API's own address."""
    return text.replace("TEMPORAL_ADDRESS:", "JOBSIGHT_TEMPORAL_HTTP_ADDRESS:", 1)


def _refusal(where: str, status: int, body: bytes) -> str:
    """An error answer in one line: Temporal's own message when it gave one (a bad query, a
    missing namespace), else what the status means here."""
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    if status == 404 and not message:
        return (
            f"JOBSIGHT_TEMPORAL_HTTP_ADDRESS: {where} answered 404; is it the frontend's HTTP "
            "port (httpPort, 7243 by default) of Temporal 1.22 or later?"
        )
    if status in (401, 403):
        return f"TEMPORAL_API_KEY: {where} refused the request ({status}) {message}".strip()
    return f"{where}: {status} {message[:300]}".strip()


async def connect(
    address: str, http_address: str, namespace: str, access: TemporalAccess, rpc_timeout: float
) -> TemporalApi:
    """The HTTP API when `http_address` is set (nothing is called until the first poll), else
    the SDK's client (which connects now)."""
    if http_address:
        return HttpApi(http_address, namespace, access)
    from temporalio.client import Client

    try:
        client = await Client.connect(
            address,
            namespace=namespace,
            connect_timeout=timedelta(seconds=rpc_timeout),
            **access.client_options(),
        )
    except RuntimeError as exc:
        raise ConnectionError(unreachable(address, access, exc)) from None
    return GrpcApi(client, address, access)
