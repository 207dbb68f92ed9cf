"""``python -m components.iot device ...``: the same as ``reactive-hub device`` (:mod:`components.iot.cli`)."""

import sys

from components.core.exits import outcome
from components.iot.cli import main

sys.exit(outcome(main))
