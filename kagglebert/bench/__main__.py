"""`python -m kagglebert.bench …`: see `kagglebert.bench.cli`."""
import sys

from .cli import main

sys.exit(0 if main() is not None else 1)
