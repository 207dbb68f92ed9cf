"""
A bounded authorization cache in Crossbar routers.

Crossbar's ``Router.authorize`` caches every authorization whose permission
says ``"cache": true`` (every permission in the hub's configs, and Crossbar's
default deny) in ``Router._authorization_cache``, keyed by ``(realm,
authrole, uri, action)``, and never evicts an entry while the role exists.
Every distinct URI a session subscribes, publishes, calls or registers, allowed
or denied, stays in the router worker for its life: this, not the broker's
subscription map (which is emptied when the sessions leave), held the 424 MB
that two sessions with 20,000 subscriptions of 8,000-character URIs left
behind on a node (docs/wire.md, "Session bounds").

``install()`` wraps ``Router.__init__`` so the cache is a :class:`BoundedCache`
of ``AUTHORIZATION_CACHE_SIZE`` entries (and swaps it into the routers that
exist already: the hub's patches install after Crossbar started the realms): a dict that is emptied when an
insertion finds it full. Lookups stay the plain dict's (no added work on a
hit); the URIs the hub really uses are a few hundred and come back on their
next authorization, while one that cycles through fresh URIs can hold no more
than the bound (with ``SESSION_MAX_URI_LENGTH``, about 10,000 x 512
characters by default).
"""

from components.node.patches import PatchUnavailable, replacement, unpatched
from components.node.patches.session_bounds import bounds_from_environment

NAME = "authcache_bound"
SECURITY = True
WORKERS = ("router",)
SUMMARY = "the router's authorization cache holds at most AUTHORIZATION_CACHE_SIZE entries"
UPSTREAM = "docs/upstream/authcache_bound.patch"
VERIFIED = {"crossbar": "26.10.1", "autobahn": "26.11.1", "twisted": "26.10.0", "txaio": "26.6.1"}

PATCHED = "_reactive_hub_authcache_bound"
CACHE = "_authorization_cache"


class BoundedCache(dict):
    """A dict of at most ``limit`` entries: an insertion into a full one empties it first."""

    __slots__ = ("limit",)

    def __init__(self, limit, entries=()):
        dict.__init__(self, entries)
        self.limit = limit

    def __setitem__(self, key, value):
        if len(self) >= self.limit and key not in self:
            self.clear()
        dict.__setitem__(self, key, value)


def bounded_cache_router(router_init, limit):
    """``Router.__init__`` that leaves a :class:`BoundedCache` of ``limit`` entries as the authorization cache."""

    def __init__(self, *args, **kwargs):
        router_init(self, *args, **kwargs)
        setattr(self, CACHE, BoundedCache(limit, getattr(self, CACHE)))

    return replacement(__init__, bounded_cache_router, PATCHED)


def install(limit=None, router_class=None):
    """
    Wrap ``Router.__init__`` (``limit`` read from ``AUTHORIZATION_CACHE_SIZE``
    when not given) and bound the running routers' caches; a note (true) if
    patched now, False if already. PatchUnavailable
    when the router no longer keeps a dict ``_authorization_cache``.
    """
    if router_class is None:
        try:
            from crossbar.router.router import Router as router_class
        except ImportError as error:
            raise PatchUnavailable("crossbar's router cannot be imported: {}".format(error))
    original = unpatched(router_class, "__init__", PATCHED)
    if original is None:
        return False
    import inspect
    try:
        source = inspect.getsource(original)
    except (OSError, TypeError):
        raise PatchUnavailable("cannot read {}.__init__ to find its authorization cache".format(
            router_class.__name__))
    if "self.{}".format(CACHE) not in source:
        raise PatchUnavailable("{} no longer keeps {}".format(router_class.__name__, CACHE))
    if limit is None:
        limit = bounds_from_environment().authorization_cache
    router_class.__init__ = bounded_cache_router(original, limit)
    existing = bound_existing(router_class, limit)
    return "{} entries; {} running router(s) bounded too".format(limit, existing)


def bound_existing(router_class, limit):
    """
    Give the routers that exist already (the hub's patches install in the
    router worker's first component, after Crossbar has started the realms)
    a :class:`BoundedCache`; the number of routers changed.
    """
    import gc
    changed = 0
    for candidate in gc.get_objects():
        if isinstance(candidate, router_class):
            cache = getattr(candidate, CACHE, None)
            if isinstance(cache, dict) and not isinstance(cache, BoundedCache):
                setattr(candidate, CACHE, BoundedCache(limit, cache))
                changed += 1
    return changed
