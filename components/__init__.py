"""The reactive hub: WAMP components, storage and auth for one Crossbar.io node."""
