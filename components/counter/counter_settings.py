"""
The counter's settings: click limits per user, how many counters may exist,
group commit, and its database wait and connections.
"""

from components.core.settings import CLIENT, DEV, DURATION, FLOAT, INT, Setting

_ROLES = (DEV, CLIENT)

COUNTER_MAX_PER_CALL = Setting("COUNTER_MAX_PER_CALL", INT, "largest `n` one `counter.click` may add", default=100,
                               minimum=1, maximum=10 ** 9, roles=_ROLES)
COUNTER_RATE = Setting("COUNTER_RATE", FLOAT, "`counter.click` calls per second per user (all its sessions share "
                       "them)", default=10.0, minimum=0.001, roles=_ROLES)
COUNTER_BURST = Setting("COUNTER_BURST", INT, "`counter.click` calls one user may make at once", default=20,
                        minimum=1, roles=_ROLES)
COUNTER_NEW_NAME_RATE = Setting("COUNTER_NEW_NAME_RATE", FLOAT, "new counters (names without a row yet) a user may "
                                "create per second", default=0.1, minimum=0.0001, roles=_ROLES)
COUNTER_NEW_NAME_BURST = Setting("COUNTER_NEW_NAME_BURST", INT, "new counters a user may create at once", default=10,
                                 minimum=1, roles=_ROLES)
COUNTER_MAX_NAMES = Setting("COUNTER_MAX_NAMES", INT, "most counters in the database; past it no new counter is "
                            "created (existing ones count on)", default=10000, minimum=1, maximum=10 ** 9,
                            roles=_ROLES)
COUNTER_BATCH = Setting("COUNTER_BATCH", INT, "most clicks committed in one transaction (group commit; 1: a "
                        "transaction per click)", default=200, minimum=1, roles=_ROLES)
COUNTER_TIMEOUT = Setting("COUNTER_TIMEOUT", DURATION, "seconds a click or get may wait for the database before "
                          "`unavailable`", default=5.0, minimum=0.1, maximum=300, roles=_ROLES)

SETTINGS = (COUNTER_MAX_PER_CALL, COUNTER_RATE, COUNTER_BURST, COUNTER_NEW_NAME_RATE, COUNTER_NEW_NAME_BURST,
            COUNTER_MAX_NAMES, COUNTER_BATCH, COUNTER_TIMEOUT)
