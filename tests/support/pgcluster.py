"""
A throwaway PostgreSQL cluster owned by one test: its own data directory and
free port, so the test may stop and start the server without touching the
machine's shared PostgreSQL. Runs the server as the ``postgres`` user when the
tests run as root (PostgreSQL refuses to run as root).
"""

import glob
import os
import pwd
import shutil
import tempfile

from twisted.internet import defer, utils

from tests.support.node import free_port


def _bin_dir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0)
    if not found:
        raise AssertionError("PostgreSQL server binaries (initdb, pg_ctl) are required and were not found "
                             "under /usr/lib/postgresql/*/bin")
    return os.path.dirname(found[-1])


class PostgresCluster:
    """
    ``yield cluster.start()`` (initdb on first use), ``yield cluster.stop()``,
    ``cluster.url`` (database ``postgres``, trust auth); ``cluster.destroy()``
    stops it hard and removes its files (register it with ``addCleanup``).
    """

    def __init__(self, user="postgres"):
        self.bin = _bin_dir()
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="hub-pg-")
        self.data = os.path.join(self.root, "data")
        self.user = user
        self._as_other = os.geteuid() == 0
        if self._as_other:
            entry = pwd.getpwnam(user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.initialised = False

    @property
    def url(self):
        return "postgresql://postgres@127.0.0.1:{}/postgres".format(self.port)

    def _command(self, program, *args):
        path = os.path.join(self.bin, program)
        if self._as_other:
            return "/usr/sbin/runuser", ["-u", self.user, "--", path] + list(args)
        return path, list(args)

    @defer.inlineCallbacks
    def _run(self, program, *args):
        executable, argv = self._command(program, *args)
        out, err, code = yield utils.getProcessOutputAndValue(executable, argv, env={"LANG": "C"}, path=self.root)
        if code != 0:
            raise AssertionError("{} failed ({}): {}{}".format(program, code, out.decode(errors="replace"),
                                                               err.decode(errors="replace")))
        return out

    @defer.inlineCallbacks
    def start(self):
        if not self.initialised:
            yield self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync",
                            "-E", "UTF8", "--no-instructions")
            self.initialised = True
        options = "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off".format(self.port, self.root)
        yield self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.root, "server.log"),
                        "-o", options, "-w", "-t", "30", "start")

    def stop(self, mode="fast"):
        return self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop")

    @defer.inlineCallbacks
    def destroy(self):
        if self.initialised and os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                yield self.stop("immediate")
            except AssertionError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
