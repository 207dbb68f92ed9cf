"""
The Django side alone (packages/reactive-hub-django): its module list is
closed under imports and imports nothing heavier than Django, PyJWT and
cryptography (read with ``ast``, and at run time in this venv); then the
wheel, built once and installed into a fresh venv with none of the hub's
packages, runs the real test project (tests/django/project): ``check``,
``migrate`` on SQLite, ``hub_check``, ``/hub/token`` whose token joins a
real hub node whose master database is the project's, ``push`` on commit
and on rollback, and ``hub_push``. The venv's size is measured and printed
(docs/django.md quotes it).
"""

import ast
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile

from twisted.internet import defer, threads
from twisted.trial import unittest

from components.applications.app_registry import AppRegistry
from components.core.settings import Settings
from components.db import db_settings
from components.db.database import Database
from components.e2e.keys import load_kek
from tests.django.support import PROJECT
from tests.django.test_login_once import django_env
from tests.support.clients import connect
from tests.support.node import REPO, TEST_SECRET, RouterNode, free_port
from tests.support.polling import eventually
from tests.test_layout import imports_of, module_files

DISTRIBUTION = os.path.join(REPO, "packages", "reactive-hub-django")
# what the Django side must never pull in (the hub's router stack, the AWS emulator, NumPy)
FORBIDDEN = ("twisted", "crossbar", "autobahn", "txaio", "moto", "boto3", "botocore", "numpy")
# the third-party packages it may import; everything else must be the standard library
ALLOWED = ("django", "jwt", "cryptography")
# the distributions the fresh venv may hold: the wheel, its requirements and theirs, the venv's pip
INSTALLED = {"reactive-hub-django", "django", "pyjwt", "cryptography", "cffi", "pycparser", "asgiref",
             "sqlparse", "pip", "setuptools", "typing-extensions"}


def distribution_lists():
    """``(PACKAGES, MODULES)`` of the distribution's setup.py, read without running it."""
    with open(os.path.join(DISTRIBUTION, "setup.py")) as handle:
        tree = ast.parse(handle.read())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(target, "id", None) for target in node.targets] in (
                ["PACKAGES"], ["MODULES"]):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found["PACKAGES"], found["MODULES"]


def shipped_modules():
    """``{module: path}`` the wheel holds: every module of PACKAGES (not their subpackages), each of MODULES
    and the ``__init__`` of every package above them."""
    modules = module_files()
    packages, singles = distribution_lists()
    found = {}
    for name, path in modules.items():
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        if package in packages:
            found[name] = path
    for name in singles:
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            found[".".join(parts[:end])] = modules[".".join(parts[:end])]
    return found


def third_party_imports(source):
    """The top-level names of the absolute non-``components`` imports in ``source``, functions included."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module.split(".")[0])
    found.discard("components")
    return found


# every shipped module imported with Django set up; prints the forbidden top-level modules then loaded
IMPORT_ALL = """
import importlib, json, sys
import django
django.setup()
for name in {modules!r}:
    importlib.import_module(name)
print("LOADED=" + json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set({forbidden!r}))))
"""


class ClosureTests(unittest.SynchronousTestCase):
    """The module list of the distribution, checked against the source."""

    def test_every_module_of_the_app_ships(self):
        """A module added to components/django_hub (a command, a migration) is in the distribution."""
        shipped = shipped_modules()
        app = [name for name in module_files() if name.startswith("components.django_hub")]
        self.assertEqual([name for name in app if name not in shipped], [])
        self.assertIn("components.django_hub.management.commands.hub_check", shipped)
        self.assertIn("components.django_hub.migrations.0001_push_outbox", shipped)

    def test_closed_and_light(self):
        """Every hub module a shipped module imports ships too, and none imports a package beyond Django,
        PyJWT, cryptography and the standard library (imports inside functions count)."""
        modules, shipped = module_files(), shipped_modules()
        missing, heavy = {}, {}
        for name, path in sorted(shipped.items()):
            with open(path) as handle:
                source = handle.read()
            outside = sorted(imports_of(source, name, modules) - set(shipped))
            if outside:
                missing[name] = outside
            extra = sorted(top for top in third_party_imports(source)
                           if top not in ALLOWED and top not in sys.stdlib_module_names)
            if extra:
                heavy[name] = extra
        self.assertEqual(missing, {}, "hub modules imported but not shipped")
        self.assertEqual(heavy, {}, "third-party imports beyond {}".format(", ".join(ALLOWED)))

    def test_nothing_heavy_at_run_time(self):
        """Importing every shipped module (Django set up, the app installed) loads none of FORBIDDEN."""
        database = os.path.join(tempfile.mkdtemp(prefix="hub-django-closure-"), "db.sqlite3")
        self.addCleanup(shutil.rmtree, os.path.dirname(database), True)
        code = IMPORT_ALL.format(modules=sorted(shipped_modules()), forbidden=FORBIDDEN)
        done = subprocess.run([sys.executable, "-c", code], env=django_env("sqlite:///" + database), cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("LOADED=[]", done.stdout, done.stdout + done.stderr)


class FreshVenv:
    """The wheel built from packages/reactive-hub-django and installed alone into a new venv."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="hub-django-venv-")
        atexit.register(shutil.rmtree, self.root, True)
        self.venv = os.path.join(self.root, "venv")
        self.python = os.path.join(self.venv, "bin", "python")
        self.env = {name: value for name, value in os.environ.items()
                    if name not in ("PYTHONPATH", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")}
        dist = os.path.join(self.root, "dist")
        self._run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                   "-w", dist, DISTRIBUTION])
        self.wheel = os.path.join(dist, os.listdir(dist)[0])
        self._run([sys.executable, "-m", "venv", self.venv])
        self._run([self.python, "-m", "pip", "install", "--quiet", self.wheel])
        listed = self._run([self.python, "-m", "pip", "list", "--format=json"]).stdout
        self.distributions = sorted(entry["name"].lower().replace("_", "-") for entry in json.loads(listed))
        self.size_mb = self._megabytes(self.venv)
        self.hub_size_mb = self._megabytes(sys.prefix)
        print("\nthe Django side alone: a fresh venv of {} MB ({}); the hub's venv (with its test tools): "
              "{} MB".format(self.size_mb, ", ".join(self.distributions), self.hub_size_mb))

    @staticmethod
    def _megabytes(path):
        return round(int(subprocess.run(["du", "-sk", path], capture_output=True, text=True,
                                        check=True).stdout.split()[0]) / 1024)

    def _run(self, argv, env=None, cwd=REPO, expect=0):
        done = subprocess.run(argv, env=env or self.env, cwd=cwd, capture_output=True, text=True, timeout=600)
        if expect is not None and done.returncode != expect:
            raise AssertionError("{} exited {} (expected {}):\n{}\n{}".format(
                " ".join(argv[:4]), done.returncode, expect, done.stdout[-3000:], done.stderr[-3000:]))
        return done

    def manage(self, database, *args, expect=0, **settings):
        """The test project's ``manage.py <args>`` with the fresh venv's python, the hub's app installed and
        its settings from the environment (``settings`` on top); no PYTHONPATH, so the wheel's copy runs."""
        env = {name: value for name, value in self.env.items()
               if not name.startswith(("HUB_", "JWT_", "E2E_"))}
        env.update({"HUBTEST_DATABASE_URL": "sqlite:///" + database, "HUBTEST_HUB_APP": "1",
                    "JWT_SECRET": TEST_SECRET, "PYTHONUNBUFFERED": "1"})
        env.update(settings)
        return self._run([self.python, "manage.py"] + list(args), env=env, cwd=PROJECT, expect=expect)


_venv = []


def fresh_venv():
    """The :class:`FreshVenv` of this test process (built on first use)."""
    if not _venv:
        _venv.append(FreshVenv())
    return _venv[0]


# in manage.py shell: alice logs in (Django's test client), asks /hub/token, prints the answer
TOKEN = """
import json
from django.contrib.auth import get_user_model
from django.test import Client
user = get_user_model().objects.create_user("alice", password="not used here", first_name="Alice")
client = Client()
client.force_login(user)
answer = client.post("/hub/token")
print("TOKEN=" + json.dumps({"status": answer.status_code, "body": answer.json()}))
import components
print("FROM=" + components.__file__)
"""

# in manage.py shell: one push rolled back, two committed (one for alice only)
PUSHES = """
from django.contrib.auth import get_user_model
from django.db import transaction
from components.django_hub import push

class RolledBack(Exception):
    pass

try:
    with transaction.atomic():
        get_user_model().objects.create_user("rolled")
        push("app.{name}.orders", "rolled back")
        raise RolledBack()
except RolledBack:
    pass
with transaction.atomic():
    get_user_model().objects.create_user("kept")
    push("app.{name}.orders", "for alice", to_users=["alice"])
    push("app.{name}.orders", "committed", n=1)
"""


class StandaloneInstallTests(unittest.TestCase):
    """The wheel in a fresh venv runs the real Django project against a real hub node."""

    timeout = 900

    @defer.inlineCallbacks
    def setUp(self):
        self.venv = yield threads.deferToThread(fresh_venv)
        self.directory = tempfile.mkdtemp(prefix="hub-django-standalone-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.database = os.path.join(self.directory, "django.db")

    def manage(self, *args, **options):
        return threads.deferToThread(self.venv.manage, self.database, *args, **options)

    def test_installs_alone(self):
        """The venv holds the wheel, Django, PyJWT, cryptography and their own requirements only; the wheel
        holds exactly the module list; neither Twisted nor the hub can be imported there."""
        self.assertEqual([name for name in self.venv.distributions if name not in INSTALLED], [])
        for name in ("reactive-hub-django", "django", "pyjwt", "cryptography"):
            self.assertIn(name, self.venv.distributions)
        with zipfile.ZipFile(self.venv.wheel) as wheel:
            files = sorted(name for name in wheel.namelist() if not name.split("/")[0].endswith(".dist-info"))
        expected = sorted(os.path.relpath(path, REPO) for path in shipped_modules().values())
        self.assertEqual(files, expected)
        # run outside the repository, whose components/ would be found first
        for module in FORBIDDEN + ("components.node", "components.auth.tokens"):
            done = self.venv._run([self.venv.python, "-c", "import " + module], cwd=self.directory, expect=None)
            self.assertNotEqual(done.returncode, 0, module)
        self.assertLess(self.venv.size_mb, self.venv.hub_size_mb)

    @defer.inlineCallbacks
    def test_project_with_a_hub_node(self):
        """check and migrate on SQLite; hub_check before the hub (78), with it (0), with a wrong secret (78)
        and a hub that does not answer (4); a /hub/token token joins the node; push delivers the committed
        events only; hub_push sends one event (0) and reports a refusal (1)."""
        checked = yield self.manage("check")
        self.assertIn("no issues", checked.stdout)
        migrated = yield self.manage("migrate", "--noinput")
        self.assertIn("reactive_hub.0001_push_outbox", migrated.stdout)
        before = yield self.manage("hub_check", expect=78)
        self.assertIn("error    database", before.stdout)

        node = RouterNode(env={"MASTER_DATABASE_URL": "sqlite:///" + self.database}, name="django-alone")
        self.addCleanup(node.cleanup)
        yield node.start()
        settings = Settings(environ=node.env, node_directory=node.directory)
        registry = AppRegistry(Database(settings.get(db_settings.DATABASE_URL)), load_kek(settings))
        self.addCleanup(registry.db.close)
        name = "shop" + uuid.uuid4().hex[:8]
        key, secret = yield registry.add(name)
        push = {"HUB_PUSH_URL": node.http, "HUB_APP_KEY": key, "HUB_APP_SECRET": secret}

        ready = yield self.manage("hub_check", "--json", **push)
        outcomes = {check["name"]: check["outcome"] for check in json.loads(ready.stdout)["checks"]}
        self.assertEqual(outcomes, dict.fromkeys(("settings", "database", "push", "hub", "key"), "ok"))
        self.assertIn("app.{}.".format(name), ready.stdout)
        yield self.manage("hub_check", expect=78, **dict(push, HUB_APP_SECRET="wrong"))
        nowhere = "http://127.0.0.1:{}".format(free_port())
        down = yield self.manage("hub_check", expect=4, **dict(push, HUB_PUSH_URL=nowhere))
        self.assertIn("error    hub", down.stdout)

        answer = yield self.manage("shell", "-c", TOKEN)
        token = json.loads(answer.stdout.split("TOKEN=", 1)[1].splitlines()[0])
        self.assertEqual((token["status"], token["body"]["username"], token["body"]["role"]),
                         (200, "alice", "user"))
        self.assertTrue(answer.stdout.split("FROM=", 1)[1].startswith(self.venv.venv), answer.stdout)
        alice = yield connect(self, node, ticket=token["body"]["token"])
        got = []
        yield alice.session.subscribe(lambda *args, **kwargs: got.append((args, kwargs)),
                                      "app.{}.orders".format(name))

        yield self.manage("shell", "-c", PUSHES.format(name=name), **push)
        sent = yield self.manage("hub_push", "app.{}.orders".format(name), "--to-user", "alice",
                                 "--json-args", '["from the shell"]', "--json-kwargs", '{"n": 2}', **push)
        self.assertIn("sent app.{}.orders to alice".format(name), sent.stdout)
        yield self.manage("hub_push", "app.other.orders", expect=1, **push)
        yield eventually(lambda: len(got) >= 3, timeout=60, message="the pushed events did not arrive",
                         details=lambda: repr(got))
        self.assertEqual(got, [(("for alice",), {}), (("committed",), {"n": 1}),
                               (("from the shell",), {"n": 2})])
