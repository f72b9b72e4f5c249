"""The `jobsight` command line. Each subcommand has --help; bad settings exit 2 with one line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from jobsight import __version__
from jobsight.cli import (
    console_indexes,
    dev,
    generate,
    grants,
    migrate,
    serve,
    verdict,
    worker,
)
from jobsight.cli.common import EXIT_BAD_SETTING
from jobsight.settings import SettingError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobsight",
        description="Observable, safe-to-roll-out background jobs on Postgres and Temporal.",
    )
    parser.add_argument("--version", action="version", version=f"jobsight {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (migrate, worker, dev, serve, verdict, generate, grants, console_indexes):
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except SettingError as exc:
        print(f"jobsight: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTING


def entry() -> None:
    """The `jobsight` command: main(), then exit. When the Temporal SDK was loaded, its native
    runtime's threads can outlive Python's shutdown and abort the process (SIGABRT, "Fatal Python
    error: PyGILState_Release") after the command has finished and said what it had to: the
    exit code is then taken straight to the OS, once output and logs are flushed."""
    code = main()
    if "temporalio.bridge" in sys.modules:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
