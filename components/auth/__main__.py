"""``python -m components.auth``: see :mod:`components.auth.cli`."""

from components.auth.cli import main

main()
