"""
boto3 for the reactor: SNS and SQS clients with short connect timeouts and
few retries (our own loops retry with backoff), and a dedicated pool of
daemon threads that runs every blocking boto3 call, never the reactor thread.
"""

import re
import threading

from twisted.internet import threads
from twisted.python.threadpool import ThreadPool

from components.usersync import usersync_settings

DEFAULT_REGION = "us-east-1"
_ARN_REGION = re.compile(r"^arn:[^:]+:[^:]+:([a-z0-9-]+):")
_URL_REGION = re.compile(r"\b(?:sqs|sns)[.-]([a-z0-9-]+)\.amazonaws\.com")


def region_for(*names, settings):
    """
    The region: the ``AWS_DEFAULT_REGION``/``AWS_REGION`` setting, else the
    one in an ARN or AWS URL among ``names``, else us-east-1.
    """
    configured = settings.get(usersync_settings.AWS_DEFAULT_REGION) or settings.get(usersync_settings.AWS_REGION)
    if configured:
        return configured
    for name in names:
        match = _ARN_REGION.match(name or "") or _URL_REGION.search(name or "")
        if match:
            return match.group(1)
    return DEFAULT_REGION


def make_client(service, endpoint_url=None, region=None, read_timeout=10, pool=10, attempts=2):
    """
    A boto3 client (blocking: call it through :class:`BlockingPool`).
    ``endpoint_url`` points at an emulator; credentials come from the standard
    chain, or dummy ones when only an emulator endpoint is configured.
    """
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=read_timeout, max_pool_connections=pool,
                    retries={"max_attempts": attempts, "mode": "standard"})
    session = boto3.session.Session()
    options = {}
    if endpoint_url and session.get_credentials() is None:
        options = {"aws_access_key_id": "emulator", "aws_secret_access_key": "emulator"}
    return session.client(service, endpoint_url=endpoint_url or None, region_name=region or DEFAULT_REGION,
                           config=config, **options)


class _DaemonThread(threading.Thread):
    def __init__(self, *args, **kwargs):
        threading.Thread.__init__(self, *args, **kwargs)
        self.daemon = True


class BlockingPool:
    """
    A thread pool for blocking calls: ``run(fn, *args, **kw)`` fires with the
    result. Threads are daemons, so a long poll in flight never holds up a
    shutdown.
    """

    def __init__(self, reactor, size, name):
        self.reactor = reactor
        self.pool = ThreadPool(minthreads=0, maxthreads=size, name=name)
        self.pool.threadFactory = _DaemonThread
        self.pool.start()

    def run(self, fn, *args, **kwargs):
        return threads.deferToThreadPool(self.reactor, self.pool, fn, *args, **kwargs)

    def stop(self):
        """Stop taking work; calls in flight finish in their daemon threads, unjoined."""
        if self.pool.started:
            threading.Thread(target=self.pool.stop, name=self.pool.name + "-stop", daemon=True).start()
