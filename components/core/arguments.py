"""
The arguments of a WAMP call, checked the way a Python signature would check
them but answered with the hub's error: a procedure registered as
``def procedure(self, /, *args, **kwargs)`` binds them with :func:`bind` (or
:func:`no_arguments`), so a caller's wrong arity, unknown keyword or missing
argument is ``reactive.error.invalid_argument`` (``field`` naming the
argument where there is one), never a ``TypeError`` that autobahn would send
back as ``wamp.error.runtime_error``. ``self`` is positional-only so that
even a caller's keyword named ``self`` lands in ``kwargs``; a details
argument (``RegisterOptions(details_arg=...)``) is keyword-only and named
``call_details``, and autobahn overwrites a caller's keyword of that name.
"""

from components.core.errors import InvalidArgument

REQUIRED = object()
"""The default of a parameter the caller must give."""

_SHOWN = 80


def shown(value):
    """``repr(value)`` cut to a readable length, for error messages that echo what the caller sent."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def bind(procedure, args, kwargs, parameters):
    """
    The values of ``parameters`` (an ordered dict of name -> default, or
    :data:`REQUIRED`) for a call of ``procedure`` with positional ``args`` and
    keyword ``kwargs``, in parameter order; InvalidArgument for more
    positional arguments than parameters, an unknown keyword, a value given
    twice or a required one missing.
    """
    names = list(parameters)
    args = list(args or ())
    kwargs = dict(kwargs or {})
    if len(args) > len(names):
        raise InvalidArgument("{} takes {} positional argument(s), got {}".format(
            procedure, "no" if not names else "at most {}".format(len(names)), len(args)))
    bound = dict(zip(names, args))
    unknown = sorted(str(key) for key in kwargs if key not in parameters)
    if unknown:
        raise InvalidArgument("{} got unknown argument(s): {}".format(
            procedure, ", ".join(name[:_SHOWN] for name in unknown[:5])), field=unknown[0][:_SHOWN])
    for key, value in kwargs.items():
        if key in bound:
            raise InvalidArgument("{} got two values for {!r}".format(procedure, key), field=key)
        bound[key] = value
    values = []
    for name, default in parameters.items():
        value = bound.get(name, default)
        if value is REQUIRED:
            raise InvalidArgument("{} needs the argument {!r}".format(procedure, name), field=name)
        values.append(value)
    return values


def no_arguments(procedure, args, kwargs):
    """Refuse any argument to ``procedure``, which takes none."""
    bind(procedure, args, kwargs, {})


def integer(name, value, minimum, maximum):
    """``value`` if it is an integer (not a bool) from ``minimum`` to ``maximum``, else InvalidArgument."""
    if type(value) is not int or not minimum <= value <= maximum:
        raise InvalidArgument("{} must be an integer from {} to {}, got {}".format(
            name, minimum, maximum, shown(value)), field=name)
    return value
