"""
PostgreSQL ``LISTEN`` read by the reactor: the relay's wake-up when the
capture trigger commits a change.
"""

import psycopg2
from twisted.internet import defer
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

from components.core.backoff import Backoff, pause


@implementer(IReadDescriptor)
class PgListener:
    """
    ``LISTEN`` on a dedicated PostgreSQL connection, read by the reactor
    (the socket is only polled when readable); calls ``on_notify()`` per
    batch of notifications, and once after every (re)connect so nothing
    sent while disconnected waits for the next poll.
    """

    log = Logger()

    def __init__(self, dsn, channel, on_notify, reactor, blocking):
        self.dsn = dsn
        self.channel = channel
        self.on_notify = on_notify
        self.reactor = reactor
        self.blocking = blocking
        self.connection = None
        self.running = False
        self.backoff = Backoff(0.5, 30.0)

    def _open(self):
        connection = psycopg2.connect(self.dsn, connect_timeout=3)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("LISTEN {}".format(self.channel))
        return connection

    def start(self):
        self.running = True
        return self._connect()

    @defer.inlineCallbacks
    def _connect(self):
        while self.running:
            try:
                connection = yield self.blocking(self._open)
            except Exception as exc:
                delay = self.backoff.next()
                self.log.warn("usersync LISTEN failed ({error}); retrying in {delay:.1f}s",
                              error=exc, delay=delay)
                yield pause(self.reactor, delay)
                continue
            if not self.running:
                connection.close()
                return
            self.backoff.reset()
            self.connection = connection
            self.reactor.addReader(self)
            self.on_notify()
            return

    def fileno(self):
        return self.connection.fileno() if self.connection is not None else -1

    def doRead(self):
        try:
            self.connection.poll()
        except Exception as exc:
            self.log.warn("usersync LISTEN connection lost: {error}", error=exc)
            self._drop()
            self._connect()
            return
        if self.connection.notifies:
            del self.connection.notifies[:]
            self.on_notify()

    def connectionLost(self, reason):
        self._drop()

    def logPrefix(self):
        return "usersync-listen"

    def _drop(self):
        connection, self.connection = self.connection, None
        if connection is not None:
            self.reactor.removeReader(self)
            try:
                connection.close()
            except Exception:
                pass

    def stop(self):
        self.running = False
        self._drop()
