"""`python -m jobsight`: the `jobsight` command."""

from jobsight.cli import entry

if __name__ == "__main__":
    entry()
