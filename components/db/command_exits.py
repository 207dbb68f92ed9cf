"""
The exit codes of a command that fails on its database (``reactive-hub
migrate``, ``user``, ``e2e``, ``sync``), for
:func:`components.core.exits.react`: a database URL that cannot be used is
a configuration error (78), a database that cannot be reached a failure (1).
"""

from components.core import exits
from components.db.database import StorageConfigError, StorageUnavailable

EXIT_CODES = {StorageConfigError: exits.CONFIG, StorageUnavailable: exits.FAILURE}
