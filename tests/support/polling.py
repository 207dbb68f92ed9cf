"""
The one poll-until-condition helper of the tests, for the reactor
(``eventually``) and for a thread that may block (``blocking_eventually``:
the browser thread, a synchronous start). The suite runs two jobs on two
shared cores, so the default timeout is generous and measured on the clock
(wall time), never as a count of polls.
"""

import time

from twisted.internet import defer, task

TIMEOUT = 30.0
INTERVAL = 0.05


def _timed_out(message, timeout, last, details):
    text = "{} after {}s (last: {!r})".format(message, timeout, last)
    return AssertionError(text if details is None else text + "\n" + details())


@defer.inlineCallbacks
def eventually(predicate, timeout=TIMEOUT, interval=INTERVAL, message="condition not met", retry_on=(),
               check=bool, details=None, clock=None):
    """
    Call ``predicate()`` every ``interval`` seconds until its value (given
    directly or as a Deferred) passes ``check`` (is true, by default) and
    fire with that value. An exception of a ``retry_on`` type counts as "not
    yet"; any other one fails at once. After ``timeout`` seconds on ``clock``
    (the reactor by default): AssertionError with ``message``, the last
    value or exception and the text of ``details()`` when given (a log tail).
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
            raise _timed_out(message, timeout, last, details)
        yield task.deferLater(clock, interval, lambda: None)


until = eventually  # the name the AWS/usersync tests use for Deferred-returning checks


def blocking_eventually(predicate, timeout=TIMEOUT, interval=INTERVAL, message="condition not met", retry_on=(),
                        check=bool, details=None, wait=time.sleep, now=time.monotonic):
    """
    ``eventually`` for a thread that may block: ``predicate()`` returns its
    value directly and ``wait(interval)`` passes the time between tries
    (a page's own wait on the browser thread); returns the value.
    """
    deadline = now() + timeout
    while True:
        try:
            last = predicate()
        except retry_on as error:
            last = error
        else:
            if check(last):
                return last
        if now() >= deadline:
            raise _timed_out(message, timeout, last, details)
        wait(interval)
