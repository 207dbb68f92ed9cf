"""``python -m components.e2e``: the same as ``reactive-hub e2e`` (:mod:`components.e2e.cli`)."""

import sys

from components.core.exits import outcome
from components.e2e.cli import main

sys.exit(outcome(main))
