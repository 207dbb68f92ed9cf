"""``python -m components.iot.demo``: the same as ``reactive-hub demo`` (:mod:`components.iot.demo.cli`)."""

import sys

from components.core.exits import outcome
from components.iot.demo.cli import main

sys.exit(outcome(main))
