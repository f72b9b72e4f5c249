"""The errors a runner or the JobService raises; each names what was wrong."""

from __future__ import annotations

MAX_ERROR_LENGTH = 8_000  # characters of error text kept on a job or an attempt


def storable_text(text: str, limit: int = MAX_ERROR_LENGTH) -> str:
    """Text PostgreSQL can store, at most `limit` characters: a NUL is written as a visible
    backslash-x00 and a lone surrogate (what Python shows for a non-UTF-8 file name) as its
    backslash escape."""
    visible = text.replace("\x00", "\\x00")
    return visible.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]


def describe_error(exc: BaseException) -> str:
    """How a handler's failure is recorded on the job: "Type: message" (or just the type),
    storable and bounded whatever the message holds."""
    text = str(exc)
    return storable_text(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


class JobsightError(Exception):
    """Base class of every error jobsight raises on purpose."""


class ValidationError(JobsightError, ValueError):
    """An input was refused before anything was written."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownJobError(JobsightError, LookupError):
    """No handler is registered under this job name."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        hint = f" (registered: {', '.join(sorted(known))})" if known else ""
        super().__init__(f"no handler registered for job name {name!r}{hint}")
        self.name = name


class DuplicateHandlerError(JobsightError):
    """A second handler was registered under a name already taken."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a handler is already registered for job name {name!r}")
        self.name = name


class JobNotFoundError(JobsightError, LookupError):
    def __init__(self, job_id: object) -> None:
        super().__init__(f"no job with id {job_id}")
        self.job_id = job_id


class IllegalTransitionError(JobsightError):
    """A status change the job's lifecycle does not allow (a finished job never goes back)."""

    def __init__(self, job_id: object, current: str, requested: str) -> None:
        super().__init__(f"job {job_id}: cannot go from {current!r} to {requested!r}")
        self.job_id = job_id
        self.current = current
        self.requested = requested


class SchemaMissingError(JobsightError, RuntimeError):
    """The database lacks jobsight's tables: `jobsight migrate up` has not run there."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            f"this database has no {', '.join(missing)} table: run `jobsight migrate up` "
            "against it first (with the same DATABASE_URL)"
        )
        self.missing = missing
