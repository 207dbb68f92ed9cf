"""
What ``manage.py hub_check`` asks the hub, over stdlib HTTP and without
publishing anything: whether it answers (``GET /health``), and whether it
takes the application key of ``push`` (``POST /apps/publish`` on a topic
outside every application's prefix: the hub checks the key before the
topic, so 403 says the key is accepted, naming the application's prefix,
and 401 that it is not).
"""

import json
import urllib.error
import urllib.request

HEALTH_PATH = "/health"
# outside every application's prefix (app.<name>.): the hub refuses it after accepting the key
PROBE_TOPIC = "hub.check"
# exit code of hub_check and hub_push when the hub does not answer (``components.core.exit_codes``: 3-63 are a
# command's own; the device commands also say 4 for unavailable)
UNAVAILABLE = 4


class Unreachable(Exception):
    """The hub did not answer (connection refused, timeout, DNS, 5xx); the message says how."""


def answers(url, timeout=5.0, opener=urllib.request.urlopen):
    """GET ``<url>/health``: None when it answers 200, else raises :class:`Unreachable`."""
    try:
        with opener(url.rstrip("/") + HEALTH_PATH, timeout=timeout) as answer:
            answer.read()
    except urllib.error.HTTPError as error:
        raise Unreachable("{}{} answered {}".format(url.rstrip("/"), HEALTH_PATH, error.code))
    except (OSError, ValueError) as error:
        raise Unreachable("{}{}: {}".format(url.rstrip("/"), HEALTH_PATH, getattr(error, "reason", error)))


def key_accepted(publisher):
    """
    The hub's answer to ``publisher``'s key and secret (an
    :class:`~components.django_hub.app_publisher.AppPublisher`): its message
    (which names the application's prefix) when it takes them, None when it
    refuses them (401); raises :class:`Unreachable` when the hub does not
    answer, ValueError for any other answer (the message says which).
    """
    body = json.dumps({"topic": PROBE_TOPIC}).encode("utf-8")
    try:
        with publisher.opener(publisher.request(body), timeout=publisher.timeout) as answer:
            raise ValueError("the hub published {} ({})".format(PROBE_TOPIC, answer.read(200)))
    except urllib.error.HTTPError as error:
        detail = error.read(500).decode("utf-8", "replace")
        if error.code == 401:
            return None
        if error.code == 403:
            return _message(detail)
        if error.code >= 500:
            raise Unreachable("{} answered {} {}".format(publisher.url, error.code, detail))
        raise ValueError("{} answered {} {}".format(publisher.url, error.code, _message(detail)))
    except OSError as error:
        raise Unreachable("{}: {}".format(publisher.url, getattr(error, "reason", error)))


def _message(detail):
    try:
        return json.loads(detail).get("message", detail)
    except (ValueError, AttributeError):
        return detail
