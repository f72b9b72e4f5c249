"""`jobsight generate`: rewrite (or check) the committed generated files."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    gen = sub.add_parser(
        "generate",
        help="write the generated files (metrics reference, dashboards, alert rules)",
        description="Regenerates every committed, generated file from the code.",
    )
    gen.add_argument("--root", default=".", help="repository root to write into (default: .)")
    gen.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a file is stale"
    )
    gen.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jobsight.generators.generate import generate

    changed = generate(Path(args.root), check=args.check)
    for path in changed:
        print(f"{'stale' if args.check else 'wrote'} {path}")
    if args.check and changed:
        print("generated files are stale: run `make generate` and commit them", file=sys.stderr)
        return 1
    if not changed:
        print("generated files are up to date")
    return 0
