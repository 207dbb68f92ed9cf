"""A Python module run as its own process, for tests of the dev node's guest workers."""

import os
import subprocess
import sys

from twisted.internet import defer

from tests.support.polling import eventually


@defer.inlineCallbacks
def run_until_said(testcase, directory, module_argv, text, env=None, timeout=30):
    """
    Start ``python -m <module_argv>`` with its output in ``directory``, wait
    until it has printed ``text`` (or exited); fire with ``(process, said)``.
    The process is killed when the test ends.
    """
    output = os.path.join(directory, "process.log")
    with open(output, "w") as handle:
        process = subprocess.Popen([sys.executable, "-m"] + list(module_argv), stdout=handle,
                                   stderr=subprocess.STDOUT, env=env)

    def stop():
        process.kill()
        process.wait()
    testcase.addCleanup(stop)

    def said():
        with open(output) as handle:
            return text in handle.read()
    yield eventually(lambda: said() or process.poll() is not None, timeout=timeout)
    return process, said()
