"""
The hub's Python client library for applications (:mod:`components.client.hub_client`):
ticket auth with a fresh JWT per (re)connect and reconnection with the hub's backoff.
"""
