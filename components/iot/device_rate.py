"""
The per-device rate limit: readings per second per registered device, with
a small burst, one token bucket per device name in each router worker's
device bridge, so ``POST /publish`` and ``iot.device.publish`` draw on the
same bucket. A reading over the limit is refused before it is published
(``reactive.error.rate_limited``, HTTP 429 with ``Retry-After``): it
reaches no subscriber and no history.

Defaults: ``DEVICE_RATE`` 10 readings/s, ``DEVICE_BURST`` 20. The NodeMcu
sketch reads every 200 ms and posts only on a change, so at most 5/s; the
demo device posts once a second. 10/s leaves a genuine device twice its
fastest pace, and the burst lets one that was offline send a short backlog
at once, while a device that floods (484 posts/s were measured without a
limit) costs the hub, every dashboard and the history at most 10 readings/s.
"""

from components.core.ratelimit import RateLimiter
from components.iot import iot_settings

DEFAULT_RATE = iot_settings.DEVICE_RATE.default
DEFAULT_BURST = iot_settings.DEVICE_BURST.default


def device_rate(settings):
    """``DEVICE_RATE``: readings per second a device may send (0.01 to 1000)."""
    return settings.get(iot_settings.DEVICE_RATE)


def device_limiter(settings, clock):
    """A :class:`RateLimiter` of ``DEVICE_RATE`` readings/s and ``DEVICE_BURST`` at once, per device, on
    ``clock`` (seconds)."""
    return RateLimiter(device_rate(settings), settings.get(iot_settings.DEVICE_BURST),
                       clock=clock)
