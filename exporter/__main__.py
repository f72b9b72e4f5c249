"""`python -m jobsight`: the `jobsight` command."""

import sys

from jobsight.cli import main

if __name__ == "__main__":
    sys.exit(main())
