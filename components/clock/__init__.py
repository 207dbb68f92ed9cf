"""
The clock: the time published on ``time.tic`` every interval and answered on
``time.get`` (the router component is :mod:`components.clock.component`).
"""

TOPIC = "time.tic"
GET = "time.get"
