"""``python -m components.usersync``: the same as ``reactive-hub sync`` (:mod:`components.usersync.cli`)."""

import sys

from components.core.exits import outcome
from components.usersync.cli import main

sys.exit(outcome(main))
