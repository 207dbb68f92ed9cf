"""
The controller's side of Crossbar's worker log handshake.

A native worker writes ``CROSSBAR_RICH_LOGGING_ENABLE=True`` as its first
line on stderr, then its log records as JSON. Crossbar's controller
(``crossbar.node.worker.WorkerProcess.log``) looks for that phrase at the
start of the first chunk it reads from the worker and drops the rest of
that chunk: records written right after the phrase are lost whenever the
controller reads them together with it, which a busy machine makes likely.
The start-up patches' notes are such records (Twisted hands them to the
worker's log the moment the worker starts logging); on 2 busy cores about
one start in five lost them.

``install()`` makes ``log`` pass the rest of that first chunk on as the
worker's first records. ``crossbar_site/sitecustomize.py`` installs it in the
``crossbar`` command's own process (the controller). A Crossbar release
without the method or the phrase is left alone.
"""

from components.node.patches import PatchUnavailable, replacement, unpatched

NAME = "handshake"
SECURITY = False
WORKERS = ("controller",)
SUMMARY = "the controller keeps worker log records that arrive in one read with the rich-logging handshake"
UPSTREAM = "docs/upstream/handshake.patch"
VERIFIED = {"crossbar": "26.10.1"}

PATCHED = "_reactive_hub_handshake_split"


def split_handshake(log, phrase):
    """``WorkerProcess.log`` that hands on what follows the handshake phrase in the worker's first chunk."""

    def split_log(self, childFD, data):
        if getattr(self, "_log_rich", False) is None:
            text = data if isinstance(data, str) else data.decode("utf8")
            if text.startswith(phrase) and len(text) > len(phrase):
                log(self, childFD, phrase)
                return log(self, childFD, text[len(phrase):])
        return log(self, childFD, data)

    return replacement(split_log, split_handshake, PATCHED)


def install(worker_class=None, phrase=None):
    """Patch Crossbar's ``WorkerProcess.log`` (or ``worker_class.log``); True if patched now."""
    try:
        if worker_class is None:
            from crossbar.node.worker import WorkerProcess as worker_class
        if phrase is None:
            from crossbar._logging import cb_logging_aware as phrase
    except ImportError as error:
        raise PatchUnavailable(str(error))
    if not hasattr(worker_class, "log"):
        raise PatchUnavailable("{} has no log".format(worker_class.__name__))
    log = unpatched(worker_class, "log", PATCHED)
    if log is None:
        return False
    worker_class.log = split_handshake(log, phrase)
    return True
