"""
Operations' settings: how often the monitor collects the metrics, the token
that guards ``/metrics`` on public ports, and what the monitor looks at.
"""

from components.core.settings import BOOL, CHOICE, DEV, DURATION, MASTER, NODES, TEXT, Setting

METRICS_INTERVAL = Setting("METRICS_INTERVAL", DURATION, "seconds between collections of the metrics (the router's "
                           "counters, `/metrics` rendered once per interval)", default=5.0, minimum=0.1,
                           maximum=3600, roles=NODES)
METRICS_TOKEN = Setting(
    "METRICS_TOKEN", TEXT, "bearer token (at least 16 characters) for `/metrics` on a public port: scrapers send "
    "`Authorization: Bearer <token>`", secret=True, min_length=16, roles=NODES,
    shown="unset: `/metrics` off (404) on public ports; a client node's internal port serves it without a token")
MONITOR_DATABASE = Setting("MONITOR_DATABASE", CHOICE, "the database whose health the monitor reports (set in the "
                           "node config)", default="client", choices=("client", "master"), roles=NODES)
MONITOR_OUTBOX = Setting("MONITOR_OUTBOX", BOOL, "the monitor also reports the master's user-change outbox (set in "
                         "the node config)", default=False, roles=(DEV, MASTER))

SETTINGS = (METRICS_INTERVAL, METRICS_TOKEN, MONITOR_DATABASE, MONITOR_OUTBOX)
