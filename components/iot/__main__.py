"""``python -m components.iot device ...``: see :mod:`components.iot.cli`."""

import sys

from components.iot.cli import main

sys.exit(main())
