"""``python -m components.applications app ...``: the same as ``reactive-hub app``
(:mod:`components.applications.cli`)."""

import sys

from components.applications.cli import main
from components.core.exits import outcome

sys.exit(outcome(main))
