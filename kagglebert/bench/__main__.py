import sys

from . import main

sys.exit(0 if main() is not None else 1)
