"""
Worker start-up patches, installed by ``crossbar_site/sitecustomize.py`` in
the Crossbar processes they concern. Each replacement carries its module's
marker attribute, so installing twice changes nothing.
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


class PatchUnavailable(Exception):
    """
    Raised by a patch module's ``install()`` when the library internals it
    changes are missing or differ from the verified versions. For a patch with
    ``SECURITY = True`` the worker then refuses to start.
    """
