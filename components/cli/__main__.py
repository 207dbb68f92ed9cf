"""``python -m components.cli``: the same as the console script ``reactive-hub``."""

import sys

from components.cli import main

sys.exit(main())
