"""
Same origin only: the token view refuses a request that a browser says
came from another origin (``Origin``; without it, ``Referer``;
``Sec-Fetch-Site`` other than ``same-origin``/``none``), whatever
``CSRF_TRUSTED_ORIGINS`` allows. No CORS headers are ever sent, so no other
origin can read an answer either.
"""

from urllib.parse import urlsplit

ALLOWED_FETCH_SITES = ("same-origin", "none")


def _origin_of(url):
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return "{}://{}".format(parts.scheme.lower(), parts.netloc.lower())


def foreign_origin(request):
    """Why ``request`` (a Django HttpRequest) is cross-origin, or None when it is not."""
    own = "{}://{}".format(request.scheme, request.get_host()).lower()
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin == "null" or _origin_of(origin) != own:
            return "cross-origin request refused (Origin {})".format(origin)
    else:
        referer = request.headers.get("Referer")
        if referer and _origin_of(referer) != own:
            return "cross-origin request refused (Referer from another origin)"
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in ALLOWED_FETCH_SITES:
        return "cross-site request refused (Sec-Fetch-Site {})".format(site)
    return None
