"""
The hub's changes to library internals, one module each, listed and
installed by ``registry`` in the Crossbar workers they concern (started by
``components.node.boot``; the table is docs/patches.md). Each replacement
carries its module's marker attribute, so installing twice changes nothing.
"""


def replacement(function, factory, marker):
    """``function`` documented as ``factory`` and carrying ``marker``: the patch ``factory`` returns."""
    function.__doc__ = factory.__doc__
    setattr(function, marker, True)
    return function


def unpatched(holder, name, marker):
    """``holder.name`` when it exists and is not a replacement carrying ``marker`` yet, else None."""
    current = getattr(holder, name, None)
    return None if current is None or getattr(current, marker, False) else current


def names_used(function):
    """The global and attribute names ``function``'s code refers to (empty for anything without code)."""
    code = getattr(function, "__code__", None)
    return set(code.co_names) if code is not None else set()


class PatchUnavailable(Exception):
    """
    Raised by a patch module's ``install()`` when the library internals it
    changes are missing or differ from the verified versions. For a patch with
    ``SECURITY = True`` the worker then refuses to start.
    """
