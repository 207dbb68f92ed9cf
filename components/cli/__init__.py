"""
The console script ``reactive-hub`` (:func:`components.cli.dispatcher.main`):
one command line for every job the hub's ``python -m`` entry points do. The
top layer: it may import every feature, and nothing imports it.
"""

from components.cli.dispatcher import main

__all__ = ["main"]
