"""
How a command line runs one command on a registry whose secrets are sealed
with the key-encryption key (devices, applications): open the client
database (``DATABASE_URL``) and the KEK of the node directory, run the
command in a reactor, close the database, and turn every failure into one
``error:`` line (a JSON object with ``--json``) and an exit code.
"""

import json

from components.core import errors, exits
from components.core.devsecrets import DevelopmentSecretRefused
from components.core.settings import SettingsError
from components.db import db_settings


def run_sealed_registry_command(settings, as_json, err, open_registry, command, exit_for, unavailable,
                                failures=()):
    """
    Fire ``command(open_registry(db, kek))`` (a Deferred) and return the exit
    code: 0 when it succeeds; ``exit_for.get(uri, unavailable)`` for a
    HubError; ``unavailable`` when the database or the KEK cannot be used;
    78 when a development secret is refused; ``code`` for an exception of a
    class in ``failures`` (``[(class, code)]``).
    """
    from components.db.database import Database, StorageConfigError
    from components.e2e.keys import load_kek

    refuse = refusal_writer(as_json, err)

    try:
        db = Database(settings.get(db_settings.DATABASE_URL))
    except (StorageConfigError, SettingsError) as error:
        return refuse(errors.UNAVAILABLE, str(error), unavailable)
    try:
        kek = load_kek(settings)
    except DevelopmentSecretRefused as error:
        db.close()
        return refuse(errors.UNAVAILABLE, exits.setting_problem(error), exits.CONFIG)
    except (SettingsError, OSError) as error:
        db.close()
        return refuse(errors.UNAVAILABLE, "the key-encryption key (E2E_KEK) cannot be used: {}".format(error),
                      unavailable)
    return run_database_command(db, as_json, err, lambda: command(open_registry(db, kek)), exit_for,
                                unavailable, failures)


def refusal_writer(as_json, err):
    """``refuse(uri, message, code)``: writes one ``error:`` line (JSON with ``as_json``) to ``err``, returns code."""
    def refuse(uri, message, code):
        err.write(json.dumps({"error": uri, "message": message}) + "\n" if as_json else
                  "error: {}\n".format(message))
        return code
    return refuse


def run_database_command(db, as_json, err, command, exit_for, unavailable, failures=()):
    """
    Fire ``command()`` (a Deferred) in a reactor, close ``db`` after it and
    return the exit code: 0 when it succeeds; ``exit_for.get(uri,
    unavailable)`` for a HubError; ``unavailable`` when the database cannot be
    used; ``code`` for an exception of a class in ``failures``.
    """
    from twisted.internet import defer

    from components.db.database import StorageUnavailable

    refuse = refusal_writer(as_json, err)
    outcome = []

    @defer.inlineCallbacks
    def work(reactor):
        try:
            yield command()
            outcome.append(0)
        except errors.HubError as error:
            outcome.append(refuse(error.uri, str(error), exit_for.get(error.uri, unavailable)))
        except StorageUnavailable as error:
            outcome.append(refuse(errors.UNAVAILABLE, "client database unavailable: {}".format(error),
                                  unavailable))
        except SettingsError as error:
            outcome.append(refuse(errors.UNAVAILABLE, str(error), unavailable))
        except tuple(kind for kind, _code in failures) as error:
            outcome.append(refuse(errors.UNAVAILABLE, str(error),
                                  next(code for kind, code in failures if isinstance(error, kind))))
        finally:
            db.close()

    try:
        exits.react(work, err)
    except SystemExit as ended:
        if ended.code not in (0, None) or not outcome:
            raise
    return outcome[0]
