"""
The one poll-until-condition helper of the tests. The suite runs two jobs on
two shared cores, so the default timeout is generous and measured on the
clock (wall time), never as a count of polls.
"""

from twisted.internet import defer, task

TIMEOUT = 30.0
INTERVAL = 0.05


@defer.inlineCallbacks
def eventually(predicate, timeout=TIMEOUT, interval=INTERVAL, message="condition not met", retry_on=(),
               check=bool, clock=None):
    """
    Call ``predicate()`` every ``interval`` seconds until its value (given
    directly or as a Deferred) passes ``check`` (is true, by default) and
    fire with that value. An exception of a ``retry_on`` type counts as "not
    yet"; any other one fails at once. After ``timeout`` seconds on ``clock``
    (the reactor by default): AssertionError with ``message`` and the last
    value or exception.
    """
    if clock is None:
        from twisted.internet import reactor as clock
    deadline = clock.seconds() + timeout
    while True:
        try:
            last = yield defer.maybeDeferred(predicate)
        except retry_on as error:
            last = error
        else:
            if check(last):
                return last
        if clock.seconds() >= deadline:
            raise AssertionError("{} after {}s (last: {!r})".format(message, timeout, last))
        yield task.deferLater(clock, interval, lambda: None)


until = eventually  # the name the AWS/usersync tests use for Deferred-returning checks
