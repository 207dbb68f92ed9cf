"""The domain error of a refused login or token (here, so that :mod:`components.auth` imports no autobahn)."""

from components.auth import AUTH_INVALID_TOKEN
from components.core.errors import family

AuthRefused = family("AuthRefused", AUTH_INVALID_TOKEN,
                     "A login or token was refused; ``uri`` is one of the ``AUTH_*`` URIs.", 401, module=__name__)
