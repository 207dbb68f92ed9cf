"""``python -m components.node migrate``: see :mod:`components.node.cli`."""

from components.node.cli import main

main()
