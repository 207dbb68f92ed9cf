"""One schema step of a component (plain data: :mod:`components.db.migrations` applies the steps)."""

from collections import namedtuple

Migration = namedtuple("Migration", "version description sqlite postgresql")
Migration.__doc__ = """
One schema step. ``sqlite`` and ``postgresql`` are lists of statements, or a
callable ``(cursor) -> None`` for steps that need logic.
"""
