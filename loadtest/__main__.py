"""`python -m hourglass.loadtest ...`: the same commands as `hourglass loadtest ...`."""

from hourglass.loadtest.cli import loadtest

if __name__ == "__main__":
    loadtest()
