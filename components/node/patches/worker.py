"""What a Crossbar worker process is, read from its command line."""

# the workers that serve HTTP and WebSocket connections
WEB_WORKERS = ("crossbar.worker.router.", "crossbar.worker.proxy.")


def worker_class(argv):
    """The ``--klass`` of a ``crossbar.worker.main`` command line, or None for any other process."""
    if "crossbar.worker.main" not in argv:
        return None
    try:
        return argv[argv.index("--klass") + 1]
    except (ValueError, IndexError):
        return None
