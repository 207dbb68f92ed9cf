"""A node of a split user sync: the dev config without one side's component (as master.json or client.json)."""

from tests.support.node import router_worker


def without(component_id):
    """A RouterNode config transform that drops the router component ``component_id``."""
    def transform(config):
        worker = router_worker(config)
        worker["components"] = [item for item in worker["components"] if item.get("id") != component_id]
        return config
    return transform
