"""
A demo OData v2 service shaped like the IoT table of SAP Cloud Platform
that the SCP post reads (``d.results[0].C_VALUE`` with ``$top=1`` and
``$orderby=G_CREATED desc``), so the OData poller has something live to
poll on a dev node.

Every ``interval`` seconds the table gets a row: a percentage (0..100, as
the NodeMcu of the post sends) that wanders, as text like SCP's
``C_VALUE``, with ``G_DEVICE`` and ``G_CREATED`` (``/Date(<epoch ms>)/``).
The newest ``size`` rows are kept.

``GET <ODATA_PATH>`` answers ``{"d": {"results": [row, ...]}}``. System
query options: ``$top`` (0..1000, default 100), ``$skip``, ``$orderby``
(``G_CREATED``, ``G_CREATED asc``, ``G_CREATED desc``; also ``ID``) and
``$format=json``. Anything else starting with ``$`` (``$filter``,
``$select`` ...), a malformed or repeated option, is a 400 with an OData
error body (``{"error": {"code", "message": {"lang", "value"}}}``); other
paths are 404 and other methods 405. Loopback only, no authentication.
"""

import json
import random as _random
from urllib.parse import unquote

from twisted.web.resource import Resource

from components.core.periodic import Periodic
from components.iot.demo import DEVICE_NAME, ODATA_PATH

MAX_TOP = 1000
DEFAULT_TOP = 100
ORDER_FIELDS = ("G_CREATED", "ID")
SUPPORTED = ("$top", "$skip", "$orderby", "$format")


class ODataError(Exception):
    """A refused request: ``status`` and an OData error message."""

    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status
        self.message = message


class DemoTable(Periodic):
    """
    The table's rows, newest last. ``add()`` appends one (``start()`` does it
    every ``interval`` seconds on ``clock``, the first at once); ``query``
    selects and orders them.
    """

    def __init__(self, clock, interval=1.0, size=1000, random=None, device=DEVICE_NAME, start=50, step=3):
        self.clock = clock
        self.interval = interval
        self.size = size
        self.random = random or _random.Random()
        self.device = device
        self.value = start
        self.step = step
        self.rows = []
        self.next_id = 1

    def tick(self):
        return self.add()

    def add(self):
        self.value = min(100, max(0, self.value + self.random.randint(-self.step, self.step)))
        created = int(self.clock.seconds() * 1000)
        if self.rows and created <= self.rows[-1]["_created"]:
            created = self.rows[-1]["_created"] + 1
        self.rows.append({"_created": created, "ID": self.next_id, "value": self.value})
        self.next_id += 1
        del self.rows[:-self.size]

    def query(self, top=DEFAULT_TOP, skip=0, orderby=("G_CREATED", False)):
        """Rows as OData entities: ordered by ``(field, descending)``, ``skip`` left out, at most ``top``."""
        field, descending = orderby
        rows = sorted(self.rows, key=lambda row: row["_created"] if field == "G_CREATED" else row["ID"],
                      reverse=descending)
        return [self.entity(row) for row in rows[skip:skip + top]]

    def entity(self, row):
        return {"__metadata": {"uri": "{}({})".format(ODATA_PATH, row["ID"]), "type": "demo.T_IOT_DEMOType"},
                "ID": row["ID"], "G_DEVICE": self.device, "G_CREATED": "/Date({})/".format(row["_created"]),
                "C_VALUE": str(row["value"])}


def _integer(name, text, maximum):
    if not text.isdigit() or int(text) > maximum:
        raise ODataError(400, "{} must be an integer from 0 to {}, got {!r}".format(name, maximum, text))
    return int(text)


def parse_orderby(text):
    """``(field, descending)`` of a ``$orderby`` value, else ODataError."""
    words = text.split()
    if not words or len(words) > 2 or words[0] not in ORDER_FIELDS or (
            len(words) == 2 and words[1] not in ("asc", "desc")):
        raise ODataError(400, "$orderby must be one of {} with optional asc or desc, got {!r}".format(
            ", ".join(ORDER_FIELDS), text))
    return words[0], len(words) == 2 and words[1] == "desc"


def parse_query(raw_query):
    """The query options of a raw query string (bytes): ``{"top", "skip", "orderby"}``, else ODataError."""
    seen = {}
    for part in raw_query.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        try:
            name = unquote(name.decode("ascii").replace("+", " "), errors="strict")
            value = unquote(value.decode("ascii").replace("+", " "), errors="strict")
        except UnicodeError:
            raise ODataError(400, "query is not ASCII / UTF-8")
        if not name.startswith("$"):
            continue  # custom query options are allowed and ignored
        if name not in SUPPORTED:
            raise ODataError(400, "system query option {} is not supported by the demo service".format(name))
        if name in seen:
            raise ODataError(400, "{} given twice".format(name))
        seen[name] = value
    if seen.get("$format", "json") != "json":
        raise ODataError(400, "$format must be json, got {!r}".format(seen["$format"]))
    return {"top": _integer("$top", seen["$top"], MAX_TOP) if "$top" in seen else DEFAULT_TOP,
            "skip": _integer("$skip", seen["$skip"], 10 ** 9) if "$skip" in seen else 0,
            "orderby": parse_orderby(seen["$orderby"]) if "$orderby" in seen else ("G_CREATED", False)}


class IoTTableResource(Resource):
    """The whole site: the entity set at ``path``, 404 elsewhere, GET (and HEAD) only."""

    isLeaf = True

    def __init__(self, table, path=ODATA_PATH):
        Resource.__init__(self)
        self.table = table
        self.path = path.encode("ascii")

    def render(self, request):
        request.setHeader(b"cache-control", b"no-store")
        try:
            if request.path.rstrip(b"/") != self.path:
                raise ODataError(404, "no such resource; the entity set is {}".format(self.path.decode()))
            if request.method not in (b"GET", b"HEAD"):
                request.setHeader(b"allow", b"GET, HEAD")
                raise ODataError(405, "only GET is supported")
            options = parse_query(request.uri.partition(b"?")[2])
        except ODataError as error:
            return self._answer(request, error.status, {"error": {"code": str(error.status), "message": {
                "lang": "en", "value": error.message}}})
        return self._answer(request, 200, {"d": {"results": self.table.query(**options)}})

    def _answer(self, request, status, document):
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json;charset=utf-8")
        request.setHeader(b"dataserviceversion", b"2.0")
        return json.dumps(document, separators=(",", ":")).encode("utf-8")
