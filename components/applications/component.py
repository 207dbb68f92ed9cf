"""
The router component applications publish through (role ``app_bridge``,
which may publish ``app.*`` and nothing else): ``POST /apps/publish``
checks the application and its topic, then publishes with this session.
"""

from components.core.component import HubComponent


class AppBridgeSession(HubComponent):
    """The one publisher of ``/apps/publish``; it holds no state of its own."""

    def start(self):
        self.log.info("application bridge session joined")
