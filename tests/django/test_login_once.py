"""
Log in once (``components.django_hub``) against real parts: a Django project
(tests/django/login_once_settings.py) served by Django's own ``runserver``
and a real hub node whose master database is the Django database, on SQLite
and on PostgreSQL. Django migrates first, then the hub installs its tables
and triggers on Django's ``auth_user``.

A browser's steps over HTTP: the login form (CSRF cookie + form token), then
``POST /hub/token`` with the ``X-CSRFToken`` header; the token joins the hub.
"""

import os
import subprocess
import sys
import uuid

import jwt
import requests
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, threads
from twisted.trial import unittest

from components.auth import AUTH_LOGIN_REQUIRED, AUTH_REVOKED
from components.core import errors
from components.usersync import ME
from tests.support.clients import connect
from tests.support.databases import postgres_url, sqlite_url
from tests.support.node import REPO, TEST_SECRET, RouterNode, free_port, node_alive, shared
from tests.support.polling import blocking_eventually, eventually

SETTINGS = "tests.django.login_once_settings"
PASSWORD = "correct horse battery"
TOKEN_FIELDS = ["expires_in", "first_name", "role", "token", "username"]
CLAIMS = ["aud", "cv", "exp", "iat", "iss", "jti", "nbf", "role", "sid", "sub"]


def django_env(database_url):
    env = dict(os.environ)
    for name in ("JWT_PUBLIC_KEY_FILE", "JWT_PRIVATE_KEY_FILE", "E2E_ENCRYPTION"):
        env.pop(name, None)
    env.update({"DJANGO_SETTINGS_MODULE": SETTINGS, "LOGIN_ONCE_DATABASE_URL": database_url,
                "JWT_SECRET": TEST_SECRET, "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1"})
    return env


def manage(database_url, *args, code=None):
    """Run ``python -m django <args>`` (or ``shell -c code``) for the project: its output."""
    command = [sys.executable, "-m", "django"] + (["shell", "-c", code] if code is not None else list(args))
    done = subprocess.run(command, env=django_env(database_url), cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        command_name = " ".join(args) or "shell"
        raise AssertionError("django {} failed:\n{}{}".format(command_name, done.stdout, done.stderr))
    return done.stdout


class DjangoServer:
    """``python -m django runserver`` on a free port, until the process exits."""

    def __init__(self, database_url, directory):
        self.database_url = database_url
        self.port = free_port()
        self.log_path = os.path.join(directory, "django.log")
        self.process = None

    @property
    def origin(self):
        return "http://127.0.0.1:{}".format(self.port)

    def start(self, timeout=60.0):
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "django", "runserver", "--noreload", "127.0.0.1:{}".format(self.port)],
                env=django_env(self.database_url), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

        def serving():
            if self.process.poll() is not None:
                raise RuntimeError("Django exited:\n" + self.log_tail())
            return requests.get(self.origin + "/accounts/login/", timeout=2).status_code == 200
        blocking_eventually(serving, timeout=timeout, interval=0.1, retry_on=(requests.ConnectionError,),
                            message="Django not serving", details=self.log_tail)
        return self

    def log_tail(self, characters=3000):
        with open(self.log_path, errors="replace") as handle:
            return handle.read()[-characters:]

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Browser:
    """A requests session that behaves like a same-origin page of the Django site."""

    def __init__(self, server):
        self.server = server
        self.http = requests.Session()

    def _same_origin(self, headers=None):
        found = {"Origin": self.server.origin, "Sec-Fetch-Site": "same-origin"}
        found.update(headers or {})
        return {name: value for name, value in found.items() if value is not None}

    def login(self, username, password=PASSWORD):
        url = self.server.origin + "/accounts/login/"
        form = self.http.get(url, timeout=10)
        marker = 'name="csrfmiddlewaretoken" value="'
        csrf = form.text.split(marker, 1)[1].split('"', 1)[0]
        answer = self.http.post(url, data={"username": username, "password": password,
                                           "csrfmiddlewaretoken": csrf},
                                headers=self._same_origin(), allow_redirects=False, timeout=10)
        if answer.status_code != 302:
            raise AssertionError("Django login of {} failed: {} {}".format(
                username, answer.status_code, answer.text[:300]))
        return answer

    def csrf(self):
        return self.http.cookies.get("csrftoken")

    def token(self, method="POST", headers=None, csrf=True):
        base = {"X-CSRFToken": self.csrf() if csrf else None, "Content-Type": "application/json"}
        base.update(headers or {})
        return self.http.request(method, self.server.origin + "/hub/token", data="{}",
                                 headers=self._same_origin(base), timeout=10)

    def logout(self):
        answer = self.http.post(self.server.origin + "/accounts/logout/", headers=self._same_origin(
            {"X-CSRFToken": self.csrf()}), allow_redirects=False, timeout=10)
        if answer.status_code != 302:
            raise AssertionError("Django logout failed: {} {}".format(answer.status_code, answer.text[:300]))


class Deployment:
    """One database, Django migrated on it, a hub node whose master database it is, and Django serving."""

    def __init__(self, database_url):
        self.database_url = database_url
        self.node = RouterNode(env={"MASTER_DATABASE_URL": database_url, "REVOCATION_POLL": "0.2"},
                               name="login-once")
        self.django = DjangoServer(database_url, self.node.directory)

    @defer.inlineCallbacks
    def start(self):
        yield threads.deferToThread(manage, self.database_url, "migrate", "--noinput")
        yield self.node.start()
        yield threads.deferToThread(self.django.start)
        return self

    def alive(self):
        return node_alive(self.node) and self.django.process is not None and self.django.process.poll() is None

    def stop(self):
        self.django.stop()
        self.node.cleanup()


def deployment(kind):
    """The deployment of ``kind`` (``sqlite`` / ``postgresql``), shared (tests.support.node.shared)."""
    return shared("login-once-" + kind,
                  build=lambda: Deployment(sqlite_url(None) if kind == "sqlite" else postgres_url(None)),
                  start=lambda found: found.start(), alive=Deployment.alive, dispose=Deployment.stop)


class LoginOnceMixin:
    """The login-once behaviour; the subclasses pick the database."""

    kind = None
    timeout = 180  # a fresh deployment: migrate, a node start (up to 120 s) and runserver

    @defer.inlineCallbacks
    def setUp(self):
        self.deployment = yield deployment(self.kind)
        self.node = self.deployment.node

    def add_user(self, superuser=False, first_name="Ada"):
        username = "u{}.{}@x".format(uuid.uuid4().hex[:8], self.kind)
        create = "create_superuser" if superuser else "create_user"
        manage(self.deployment.database_url, code=(
            "from django.contrib.auth.models import User\n"
            "User.objects.{}({!r}, email='', password={!r}, first_name={!r})".format(
                create, username, PASSWORD, first_name)))
        return username

    def change_user(self, username, statement):
        manage(self.deployment.database_url, code=(
            "from django.contrib.auth.models import User\n"
            "user = User.objects.get(username={!r})\n{}\nuser.save()".format(username, statement)))

    @defer.inlineCallbacks
    def logged_in(self, superuser=False):
        """A user created through Django and a Browser logged in as it: ``(username, browser)``."""
        username = yield threads.deferToThread(self.add_user, superuser)
        browser = Browser(self.deployment.django)
        yield threads.deferToThread(browser.login, username)
        return username, browser

    @defer.inlineCallbacks
    def fetch_token(self, browser):
        answer = yield threads.deferToThread(browser.token)
        self.assertEqual(answer.status_code, 200, answer.text[:300] + self.deployment.django.log_tail())
        return answer.json()

    @defer.inlineCallbacks
    def joined(self, ticket):
        """A hub client joined with ``ticket`` (no reconnects), and the list of its leave reasons."""
        leaves = []
        client = yield connect(self, self.node, ticket=ticket, reconnect=False)
        client.on_leave(lambda details: leaves.append(details.reason))
        return client, leaves

    @defer.inlineCallbacks
    def assert_refused_at_join(self, ticket):
        try:
            yield connect(self, self.node, ticket=ticket, reconnect=False)
        except ApplicationError as exc:
            self.assertEqual(exc.error, AUTH_REVOKED)
        else:
            self.fail("a revoked token joined")

    # ---- tests ---------------------------------------------------------

    @defer.inlineCallbacks
    def test_django_login_gives_a_token_that_joins_the_hub(self):
        """After a Django login the view answers what /auth/token answers, and the token joins and calls."""
        username, browser = yield self.logged_in()
        answer = yield self.fetch_token(browser)
        self.assertEqual(sorted(answer), TOKEN_FIELDS)
        self.assertEqual((answer["username"], answer["role"], answer["first_name"], answer["expires_in"]),
                         (username, "user", "Ada", 900))
        claims = jwt.decode(answer["token"], TEST_SECRET, algorithms=["HS256"], audience="reactive")
        self.assertEqual(sorted(claims), CLAIMS)
        self.assertEqual((claims["sub"], claims["role"], claims["iss"], claims["cv"]),
                         (username, "user", "reactive", 0))
        session_key = browser.http.cookies.get("sessionid")
        self.assertEqual(len(claims["sid"]), 32)
        self.assertNotIn(session_key, claims["sid"])
        # the same Django session, the same login-session id
        again = yield self.fetch_token(browser)
        again_claims = jwt.decode(again["token"], options={"verify_signature": False})
        self.assertEqual(again_claims["sid"], claims["sid"])
        client, _ = yield self.joined(answer["token"])
        self.assertEqual(client.session._authid, username)
        state = yield client.session.call("counter.click")
        self.assertGreaterEqual(state["value"], 1)
        yield client.session.call(ME)   # allowed for the user (the profile itself comes with the user sync)

    @defer.inlineCallbacks
    def test_superuser_gets_the_admin_role(self):
        """A Django superuser's token has role admin and joins as admin."""
        username, browser = yield self.logged_in(superuser=True)
        answer = yield self.fetch_token(browser)
        self.assertEqual(answer["role"], "admin")
        client, _ = yield self.joined(answer["token"])
        self.assertEqual(client.session._authrole, "admin")

    @defer.inlineCallbacks
    def test_cross_origin_post_is_refused(self):
        """A valid session and CSRF token, but a foreign Origin, Referer or Sec-Fetch-Site: 403, no token."""
        _, browser = yield self.logged_in()
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Origin": None, "Referer": "http://evil.example/page"},
                        {"Origin": None, "Sec-Fetch-Site": "cross-site"},
                        {"Origin": "http://127.0.0.1:1"}):
            answer = yield threads.deferToThread(browser.token, headers=headers)
            self.assertEqual(answer.status_code, 403, headers)
            self.assertEqual(answer.json()["error"], errors.NOT_AUTHORIZED)
            self.assertNotIn("token", answer.text)
            self.assertNotIn("Access-Control-Allow-Origin", answer.headers)
        good = yield threads.deferToThread(browser.token)
        self.assertEqual(good.status_code, 200)

    @defer.inlineCallbacks
    def test_post_without_csrf_token_is_refused(self):
        """Django's CSRF check guards the view: no X-CSRFToken, 403 and no token."""
        _, browser = yield self.logged_in()
        answer = yield threads.deferToThread(browser.token, csrf=False)
        self.assertEqual(answer.status_code, 403)
        self.assertNotIn('"token"', answer.text)

    @defer.inlineCallbacks
    def test_get_is_refused(self):
        """GET (even logged in) gets 405 with Allow: POST and no token."""
        _, browser = yield self.logged_in()
        answer = yield threads.deferToThread(browser.token, "GET")
        self.assertEqual((answer.status_code, answer.headers.get("Allow")), (405, "POST"))
        self.assertNotIn('"token"', answer.text)

    @defer.inlineCallbacks
    def test_anonymous_gets_401(self):
        """Without a Django login: 401 reactive.error.auth.login_required (hub.js: signed out)."""
        browser = Browser(self.deployment.django)
        yield threads.deferToThread(browser.http.get, self.deployment.django.origin + "/accounts/login/")
        answer = yield threads.deferToThread(browser.token)
        self.assertEqual(answer.status_code, 401)
        self.assertEqual(answer.json()["error"], AUTH_LOGIN_REQUIRED)

    @defer.inlineCallbacks
    def test_django_logout_revokes_the_tokens_and_ends_the_session(self):
        """A Django logout: the open hub session ends with auth.revoked, its token is refused at join."""
        username, browser = yield self.logged_in()
        answer = yield self.fetch_token(browser)
        other_user, other_browser = yield self.logged_in()
        other = yield self.fetch_token(other_browser)
        client, leaves = yield self.joined(answer["token"])
        bystander, bystander_leaves = yield self.joined(other["token"])
        yield threads.deferToThread(browser.logout)
        yield eventually(lambda: leaves, timeout=10, message="session not ended after the Django logout")
        self.assertEqual(leaves, [AUTH_REVOKED])
        yield self.assert_refused_at_join(answer["token"])
        after = yield threads.deferToThread(browser.token)
        self.assertEqual(after.status_code, 401)
        # another user's login is untouched
        self.assertEqual(bystander_leaves, [])
        yield bystander.session.call("counter.get")

    @defer.inlineCallbacks
    def test_password_change_revokes_the_tokens_and_ends_the_session(self):
        """
        set_password through Django's ORM: the open session ends with auth.revoked, the token is refused
        at join, the Django session gets 401; a new login's token carries the new version and joins.
        """
        username, browser = yield self.logged_in()
        answer = yield self.fetch_token(browser)
        client, leaves = yield self.joined(answer["token"])
        yield threads.deferToThread(self.change_user, username, "user.set_password('another secret 2')")
        yield eventually(lambda: leaves, timeout=10, message="session not ended after set_password")
        self.assertEqual(leaves, [AUTH_REVOKED])
        yield self.assert_refused_at_join(answer["token"])
        after = yield threads.deferToThread(browser.token)
        self.assertEqual(after.status_code, 401)
        # logging in again with the new password gives a token with the new credential version, which joins
        yield threads.deferToThread(browser.login, username, "another secret 2")
        fresh = yield self.fetch_token(browser)
        self.assertEqual(jwt.decode(fresh["token"], options={"verify_signature": False})["cv"], 1)
        yield self.joined(fresh["token"])

    @defer.inlineCallbacks
    def test_deactivated_user_gets_401(self):
        """is_active false: the Django session no longer gets a token (and earlier tokens are revoked)."""
        username, browser = yield self.logged_in()
        answer = yield self.fetch_token(browser)
        yield threads.deferToThread(self.change_user, username, "user.is_active = False")
        after = yield threads.deferToThread(browser.token)
        self.assertEqual(after.status_code, 401)
        yield self.assert_refused_at_join(answer["token"])


class CheckTests(unittest.TestCase):
    """``manage.py check`` names what would make the token view fail, before any request."""

    def check(self, **env):
        environment = django_env(sqlite_url(self))
        environment.update(env)
        return subprocess.run([sys.executable, "-m", "django", "check"], env=environment, cwd=REPO,
                              capture_output=True, text=True, timeout=120)

    def test_settings_that_work_pass(self):
        """The hub's secret and E2E off: no issues."""
        done = self.check()
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_e2e_on_is_reported(self):
        """E2E_ENCRYPTION on: the app does not hand out end-to-end keys, and says so (reactive_hub.E002)."""
        done = self.check(E2E_ENCRYPTION="on")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("reactive_hub.E002", done.stderr)

    def test_short_secret_is_reported(self):
        """A JWT_SECRET under 32 bytes: reactive_hub.E001 naming it."""
        done = self.check(JWT_SECRET="short")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("reactive_hub.E001", done.stderr)
        self.assertIn("JWT_SECRET", done.stderr)

    def test_unknown_database_alias_is_reported(self):
        """HUB_DATABASE naming no Django database: reactive_hub.E003."""
        done = self.check(HUB_DATABASE="hub")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("reactive_hub.E003", done.stderr)


class WithoutHubTablesTests(unittest.TestCase):
    """A Django database the hub never ran on: the view answers 503 and logs why, and issues no token."""

    def test_503_without_the_hub_tables(self):
        url = sqlite_url(self)
        manage(url, "migrate", "--noinput")
        output = manage(url, code=(
            "from django.contrib.auth.models import User\n"
            "from django.test import Client\n"
            "client = Client()\n"
            "client.force_login(User.objects.create_user('ann', password='x'))\n"
            "answer = client.post('/hub/token', '{}', content_type='application/json')\n"
            "print('STATUS', answer.status_code, answer.content.decode())"))
        line = next(line for line in output.splitlines() if line.startswith("STATUS"))
        self.assertIn("STATUS 503", line)
        self.assertIn(errors.UNAVAILABLE, line)
        self.assertNotIn('"token"', line)


class LoginOnceSQLiteTests(LoginOnceMixin, unittest.TestCase):
    """Django and the hub on one SQLite file."""

    kind = "sqlite"


class LoginOncePostgreSQLTests(LoginOnceMixin, unittest.TestCase):
    """Django and the hub on one PostgreSQL database."""

    kind = "postgresql"
