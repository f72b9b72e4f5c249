"""`jobsight console-indexes`: the SQL of the console search's optional indexes on `jobs`."""

from __future__ import annotations

import argparse
from typing import Any

from jobsight.console.indexes import create_statements, drop_statements


def register(sub: Any) -> None:
    command = sub.add_parser(
        "console-indexes",
        help="print the SQL of the console search's optional indexes on the jobs table",
        description="Prints CREATE INDEX CONCURRENTLY statements (one a line, each outside a "
        "transaction) for the indexes that keep the console's job search fast on millions of "
        "jobs. They cost every job three more index writes (a busy pgqueue loses about a quarter "
        "of its throughput; docs/console.md), so they are not part of `jobsight migrate up`. "
        'Run them as the table\'s owner, e.g. `jobsight console-indexes | psql "$ADMIN_URL"`.',
    )
    command.add_argument(
        "--drop", action="store_true", help="print the statements that drop them instead"
    )
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    statements = drop_statements() if args.drop else create_statements()
    print("\n".join(f"{statement};" for statement in statements))
    return 0
