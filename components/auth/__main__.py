"""``python -m components.auth``: the same as ``reactive-hub token`` / ``reactive-hub user`` (:mod:`components.auth.cli`)."""

import sys

from components.auth.cli import main
from components.core.exits import outcome

sys.exit(outcome(main))
