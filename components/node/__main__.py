"""``python -m components.node migrate``: the same as ``reactive-hub migrate`` (:mod:`components.node.cli`)."""

import sys

from components.core.exits import outcome
from components.node.cli import main

sys.exit(outcome(main))
