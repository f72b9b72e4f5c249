"""`jobsight grants`: the SQL that gives the sidecar's own role exactly what it needs.

The sidecar reads what it watches and writes only its own schema (`jobsight_sidecar`). The SQL
is one statement block that runs as written on any database migrated by `jobsight migrate up`,
with or without pg-boss: a schema that is missing is skipped with a notice, and each schema that
exists also gets default privileges, so tables its owner creates later are readable too.
Run it as a superuser, or as the owner of the watched schemas.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from jobsight.settings import SettingError
from jobsight.settings import parsing as parse

ROLE_DEFAULT = "jobsight_sidecar"
STATE_SCHEMA = "jobsight_sidecar"
WATCHED = {"jobs": "public", "pgqueue": "pgqueue"}  # source -> schema (pgboss: its setting)


def register(sub: Any) -> None:
    grants = sub.add_parser(
        "grants",
        help="print the SQL granting the sidecar's role what it reads and writes",
        description="Prints one SQL block that grants a role (created beforehand, with LOGIN) "
        "read access to the schemas of the enabled sources, write access to the sidecar's own "
        "schema only, pg_monitor (to see every session), and default privileges so tables "
        "created later are covered. It runs as written with or without pg-boss; run it as a "
        'superuser or the schemas\' owner, e.g. `jobsight grants | psql "$ADMIN_URL"`.',
    )
    grants.add_argument(
        "--role", default=ROLE_DEFAULT, help=f"the sidecar's role (default {ROLE_DEFAULT})"
    )
    grants.add_argument(
        "--sources",
        help="sources the sidecar polls, comma-separated (default: $JOBSIGHT_SOURCES, else "
        "jobs,pgqueue,pgboss,postgres)",
    )
    grants.add_argument(
        "--pgboss-schema",
        help="schema of pg-boss's tables (default: $JOBSIGHT_PGBOSS_SCHEMA, else pgboss)",
    )
    grants.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        role = parse.identifier(args.role)
        schema = parse.identifier(
            args.pgboss_schema or os.environ.get("JOBSIGHT_PGBOSS_SCHEMA") or "pgboss"
        )
        chosen = args.sources or os.environ.get("JOBSIGHT_SOURCES") or "auto"
        sources = parse.source_names(chosen)
    except ValueError as exc:
        raise SettingError(f"grants: {exc}") from None
    if sources == ("auto",):
        sources = ("jobs", "pgqueue", "pgboss", "postgres")
    print(grants_sql(role, sources, schema), end="")
    return 0


def grants_sql(role: str, sources: tuple[str, ...], pgboss_schema: str) -> str:
    """The SQL for `role`. Pure; `role` and the schema are validated identifiers."""
    schemas = [WATCHED[s] for s in ("jobs", "pgqueue") if s in sources]
    if "pgboss" in sources:
        schemas.append(pgboss_schema)
    watched = ", ".join(f"'{s}'" for s in schemas)
    monitor = (
        f"  GRANT pg_monitor TO {role};  -- every session in pg_stat_activity; the commit horizon\n"
        if "postgres" in sources or "jobs" in sources
        else ""
    )
    return rf"""-- jobsight grants for role {role}, sources {", ".join(sources)}
-- The role must exist: CREATE ROLE {role} LOGIN PASSWORD '...';
DO $grants$
DECLARE
  watched text;
  owner text;
BEGIN
{monitor}  FOREACH watched IN ARRAY ARRAY[{watched}]::text[] LOOP
    IF to_regnamespace(watched) IS NULL THEN
      RAISE NOTICE 'schema % does not exist (yet): run these grants again once it does', watched;
      CONTINUE;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO {role}', watched);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {role}', watched);
    -- tables created later by the roles that own the schema or its tables: readable too
    FOR owner IN
      SELECT DISTINCT r.rolname FROM pg_roles r
      WHERE r.rolname NOT LIKE 'pg\_%'
        AND (r.oid = (SELECT nspowner FROM pg_namespace WHERE nspname = watched)
             OR r.oid IN (SELECT relowner FROM pg_class WHERE relnamespace = watched::regnamespace))
    LOOP
      EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I '
                     'GRANT SELECT ON TABLES TO {role}', owner, watched);
    END LOOP;
  END LOOP;
  -- its own schema, the only one it writes (created by jobsight migrate up)
  GRANT USAGE ON SCHEMA {STATE_SCHEMA} TO {role};
  GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {STATE_SCHEMA} TO {role};
  GRANT USAGE ON ALL SEQUENCES IN SCHEMA {STATE_SCHEMA} TO {role};  -- the console's audit ids
END
$grants$;
"""  # noqa: S608 - SQL printed for an operator; the role and schemas are validated identifiers
