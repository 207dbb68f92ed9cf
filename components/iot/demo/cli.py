"""
The dev node's demo sources (the guest worker ``demo`` of
``.crossbar/config.json`` runs ``run``):

    reactive-hub demo [run|arduino|odata|device] [--cbdir DIR]
    python -m components.iot.demo [run|arduino|odata|device] [--cbdir DIR]

``run`` starts all three; the others one each. The node directory (for
``run/arduino``, ``secrets/`` and the client database) is ``--cbdir``, else
``CROSSBAR_DIR``, else ``./.crossbar``. With ``DEMO=off`` it says so and
idles (the node keeps running without the demo). Stops on SIGTERM/SIGINT,
removing the Arduino's link, with exit code 0 (a guest ended otherwise is
logged by Crossbar as exited with error).
"""

import argparse
import os
import signal
import sys

from components.core.settings import Settings, SettingsError, node_dir
from components.core.stop_signals import exit_on_stop_signals, ignore_stop_signals
from components.iot import iot_settings
from components.iot.demo import WORKER
from components.iot.demo.runner import PARTS, DemoRunner, stopping_node


def log_observer(out):
    """
    Our lines at info and above, everyone else's (HTTP client factories,
    the reactor) at warn and above; no timestamp, the node's log adds one.
    """
    from twisted.logger import (FileLogObserver, FilteringLogObserver, LogLevel, PredicateResult,
                                formatEventAsClassicLogText)

    def wanted(event):
        ours = event.get("log_namespace", "").startswith("components.")
        level = event.get("log_level", LogLevel.info)
        enough = level >= (LogLevel.info if ours else LogLevel.warn)
        return PredicateResult.yes if enough else PredicateResult.no

    def text(event):
        return formatEventAsClassicLogText(event, formatTime=lambda _: "").lstrip()
    return FilteringLogObserver(FileLogObserver(out, text), [wanted])


def _idle(reason):
    print("{}: {}".format(WORKER, reason), file=sys.stderr, flush=True)
    exit_on_stop_signals()  # the node's SIGTERM ends it with 0, not by the signal
    while True:
        signal.pause()


def main(argv=None, prog="python -m components.iot.demo"):
    """The command line; runs until stopped."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", default="run", choices=("run",) + PARTS)
    parser.add_argument("--cbdir", help="node directory (default CROSSBAR_DIR or ./.crossbar)")
    parser.add_argument("--stop-node", action="store_true",
                        help="run as the dev node's guest worker: a refusal (a bad setting, the demo OData port "
                             "taken) also stops the node (SIGTERM to the Crossbar controller, the parent process)")
    options = parser.parse_args(argv)
    directory = node_dir(argv=["--cbdir", options.cbdir] if options.cbdir else [])
    settings = Settings(node_directory=directory)
    try:
        if not settings.get(iot_settings.DEMO):
            _idle("off (DEMO=off): no simulated Arduino, demo OData service or demo device on this node")
    except SettingsError as error:
        _idle("{}: the demo stays off".format(error))

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner

    globalLogBeginner.beginLoggingTo([log_observer(sys.stdout)], redirectStandardIO=False)
    runner = DemoRunner(reactor, settings, PARTS if options.part == "run" else (options.part,),
                        exit=stopping_node() if options.stop_node else os._exit)
    reactor.callWhenRunning(runner.start)
    # stopping on the first SIGINT/SIGTERM; the controller's SIGTERM after a Ctrl-C of the node must not kill it
    reactor.addSystemEventTrigger("before", "shutdown", ignore_stop_signals)
    reactor.addSystemEventTrigger("before", "shutdown", runner.stop)
    reactor.run()
    return 0

