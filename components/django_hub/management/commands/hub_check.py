"""
``manage.py hub_check [--json]``: what would keep the hub's Django side
from working, one line per check (``ok``, ``error`` or ``skipped``):

- ``settings``: the app's system checks (JWT keys, ``E2E_ENCRYPTION``,
  ``HUB_DATABASE``), as ``manage.py check`` runs them;
- ``database``: the hub's tables in ``HUB_DATABASE`` (the hub node creates
  them on its first start on that database);
- ``push``: ``HUB_PUSH_URL``, ``HUB_APP_KEY`` and ``HUB_APP_SECRET`` all set
  (skipped when none is: log in once works without push);
- ``hub``: the hub at ``HUB_PUSH_URL`` answers ``/health``;
- ``key``: the hub takes the application key (nothing is published).

Exit codes: 0 all well; 78 a setting, the key or the database is wrong;
4 the settings are right but the hub does not answer.
"""

import json

from django.conf import settings as django_settings
from django.core import checks
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from components.core.exit_codes import CONFIG
from components.core.settings import Settings, SettingsError
from components.django_hub import APP_LABEL, hub_probe, logins
from components.django_hub import django_hub_settings as names
from components.django_hub.app_publisher import PUBLISH_PATH
from components.django_hub.commit_push import publisher
from components.django_hub.conf import hub_settings

OK, ERROR, SKIPPED = "ok", "error", "skipped"
# a name no user has: the check reads the credential table, any answer (0) will do
PROBE_USER = "hub_check"


class Command(BaseCommand):
    help = "Check the hub's Django side: settings, the hub's tables, whether the hub answers and takes the key."
    requires_system_checks = []   # it runs the app's checks itself, and reports them as one of its own

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json",
                            help="one JSON object instead of lines")

    def handle(self, as_json=False, **options):
        found, unreachable = [], False
        settings_ok = self._settings(found)
        if settings_ok:
            self._database(found)
        else:
            found.append(("database", SKIPPED, "the settings above first"))
        push_ok = self._push(found)
        if push_ok:
            unreachable = self._hub(found)
        self._report(found, as_json)
        if any(outcome == ERROR for _name, outcome, _text in found):
            raise CommandError("the hub's Django side is not ready", returncode=hub_probe.UNAVAILABLE
                               if unreachable and not _config_errors(found) else CONFIG)

    def _settings(self, found):
        problems = [message for message in checks.run_checks(tags=[APP_LABEL])
                    if message.level >= checks.ERROR]
        for problem in problems:
            hint = " ({})".format(problem.hint) if problem.hint else ""
            found.append(("settings", ERROR, "{}: {}{}".format(problem.id, problem.msg, hint)))
        if not problems:
            found.append(("settings", OK, "JWT keys, E2E_ENCRYPTION and HUB_DATABASE usable"))
        return not problems

    def _database(self, found):
        alias = hub_settings().database
        try:
            logins.credential_version(alias, PROBE_USER)
        except DatabaseError as error:
            found.append(("database", ERROR, "cannot read the hub's tables in database {!r} ({}); the hub "
                          "node creates them on its first start on this database".format(alias, error)))
            return
        found.append(("database", OK, "the hub's tables are in database {!r}".format(alias)))

    def _push(self, found):
        settings = Settings(getattr(django_settings, "HUB", None) or {})
        given = [decl.name for decl in (names.HUB_PUSH_URL, names.HUB_APP_KEY, names.HUB_APP_SECRET)
                 if settings.get(decl)]
        if not given:
            found.append(("push", SKIPPED, "HUB_PUSH_URL, HUB_APP_KEY and HUB_APP_SECRET unset: push is off"))
            return False
        try:
            sender = publisher()
        except SettingsError as error:
            found.append(("push", ERROR, str(error)))
            return False
        found.append(("push", OK, "publishes to {}".format(sender.url)))
        return True

    def _hub(self, found):
        """Whether the hub did not answer."""
        sender = publisher()
        try:
            hub_probe.answers(sender.url[:-len(PUBLISH_PATH)], sender.timeout)
            found.append(("hub", OK, "answers"))
            accepted = hub_probe.key_accepted(sender)
        except hub_probe.Unreachable as error:
            found.append(("hub", ERROR, "does not answer: {}".format(error)))
            found.append(("key", SKIPPED, "the hub first"))
            return True
        except ValueError as error:
            found.append(("key", ERROR, str(error)))
            return False
        if accepted is None:
            found.append(("key", ERROR, "the hub refused HUB_APP_KEY/HUB_APP_SECRET (unknown, revoked or "
                                        "rotated: `reactive-hub app list`)"))
        else:
            found.append(("key", OK, "accepted ({})".format(accepted)))
        return False

    def _report(self, found, as_json):
        if as_json:
            self.stdout.write(json.dumps({"ok": not any(outcome == ERROR for _n, outcome, _t in found),
                                          "checks": [{"name": name, "outcome": outcome, "message": text}
                                                     for name, outcome, text in found]}))
            return
        for name, outcome, text in found:
            self.stdout.write("{:<8} {}: {}".format(outcome, name, text))


def _config_errors(found):
    return [name for name, outcome, _text in found if outcome == ERROR and name != "hub"]
