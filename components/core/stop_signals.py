"""
Stop signals of a program the dev node runs as a Crossbar guest worker
(``sync emulator``, the demo). Crossbar logs "Guest ... exited with error"
for a guest that ends with a non-zero code or by a signal. A Ctrl-C reaches
the whole process group (SIGINT), and the controller sends SIGTERM to its
guests right after; so the first stop signal must end the guest with 0 and a
second one, arriving while it exits, must not end it by the signal (Python
puts its handlers back to the default while it finalizes).
"""

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ignore_stop_signals():
    """From now on SIGINT and SIGTERM do nothing: this process is already on its way out."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)


def exit_on_stop_signals(code=0):
    """The first SIGINT or SIGTERM raises ``SystemExit(code)`` (in the main thread) and ignores later ones."""
    def stop(_number, _frame):
        ignore_stop_signals()
        raise SystemExit(code)
    for number in STOP_SIGNALS:
        signal.signal(number, stop)
