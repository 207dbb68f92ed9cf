"""
A real Django project (``tests/django/project``) on a test database, run
the way an operator runs it: ``manage.py`` in a subprocess with the venv's
python. ORM work goes through ``manage.py shell -c``; the hub's commands
(``python -m components.usersync ...``) run in a subprocess too, with the
same database and the user-table settings.
"""

import json
import os
import subprocess
import sys

from twisted.internet import threads

from components.db.database import Database

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(HERE, "project")
REPO = os.path.dirname(os.path.dirname(HERE))
CUSTOM_TABLE = "accounts_user"


class Failed(AssertionError):
    """A subprocess exited with an unexpected code; the message holds its output."""


class DjangoProject:
    """
    The test project on ``database_url`` (``postgresql://`` or ``sqlite:///``);
    ``custom`` selects the ``accounts.User`` model (table ``accounts_user``).
    Every method returns a Deferred (the subprocess runs in a thread).
    """

    def __init__(self, database_url, custom=False, hasher=None, hub_env=None):
        self.database_url = database_url
        self.custom = custom
        self.table = CUSTOM_TABLE if custom else "auth_user"
        self.env = dict(os.environ, HUBTEST_DATABASE_URL=self._django_url(database_url),
                        HUBTEST_CUSTOM_USER="1" if custom else "0", PYTHONPATH=REPO)
        if hasher:
            self.env["HUBTEST_HASHER"] = hasher
        self.hub_env = dict(os.environ, MASTER_DATABASE_URL=database_url, AUTH_USER_TABLE=self.table,
                            AUTH_USER_TABLE_OWNER="django", PYTHONPATH=REPO, **(hub_env or {}))

    @staticmethod
    def _django_url(url):
        # the hub's sqlite:///path is relative unless the path starts with '/': keep it absolute for Django
        if url.startswith("sqlite:///"):
            return "sqlite:///" + os.path.abspath(url[len("sqlite:///"):])
        return url

    def database(self, testcase):
        """A hub handle on the same database, closed after the test."""
        db = Database(self.database_url)
        testcase.addCleanup(db.close)
        return db

    def _run(self, argv, env, cwd, expect=0, stdin=None):
        result = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=120)
        if expect is not None and result.returncode != expect:
            raise Failed("{} exited {} (expected {}):\n{}\n{}".format(
                " ".join(argv), result.returncode, expect, result.stdout[-3000:], result.stderr[-3000:]))
        return result

    def manage(self, *args, expect=0):
        """``python manage.py <args>``; fires with the CompletedProcess."""
        return threads.deferToThread(self._run, [sys.executable, "manage.py"] + list(args), self.env, PROJECT,
                                     expect)

    def orm(self, code):
        """
        Run ``code`` in ``manage.py shell`` with ``User`` (the project's user
        model) and ``connection`` at hand; fires with the JSON value it
        assigns to ``result`` (None if it does not).
        """
        script = ("import json\nfrom django.contrib.auth import get_user_model\nfrom django.db import connection\n"
                  "User = get_user_model()\nresult = None\n" + code + "\nprint('RESULT=' + json.dumps(result))\n")
        d = self.manage("shell", "-c", script)

        def value(result):
            for line in result.stdout.splitlines():
                if line.startswith("RESULT="):
                    return json.loads(line[len("RESULT="):])
            raise Failed("no result from the shell:\n" + result.stdout + result.stderr)
        return d.addCallback(value)

    def hub(self, *args, expect=0, env=None, stdin=None):
        """``python -m <args>`` of the hub against the same database; fires with the CompletedProcess."""
        return threads.deferToThread(self._run, [sys.executable, "-m"] + list(args), dict(self.hub_env, **(env or {})),
                                     REPO, expect, stdin)
