"""
Key administration and debugging for end-to-end encrypted payloads
(``reactive-hub e2e``; ``python -m components.e2e`` is the same):

    reactive-hub e2e rotate --user alice        # new key of alice's current identity; the old one
                                                # works for the grace period (same identity only)
    reactive-hub e2e rotate --all
    reactive-hub e2e decrypt --user alice --topic users.changed --seq 17 '<envelope JSON>'
    reactive-hub e2e decrypt --user alice --topic users.changed '<state JSON with value and seq>'

Uses DATABASE_URL (the client database) and E2E_KEK / E2E_KEK_FILE (or the dev
node's generated key-encryption key via CROSSBAR_DIR). Exit codes: 0 done,
1 refused (the reason is printed: an envelope, or with ``reactive-hub e2e``
``rotate --user`` of a name not in the user table), 2 usage, 78 a setting.
"""

import argparse
import json
import sys

from twisted.internet import defer

from components.e2e import e2e_settings, envelope
from components.e2e.keys import MIGRATIONS, UserKeys, load_kek
from components.core.exits import react
from components.core.settings import Settings
from components.db import db_settings
from components.db.command_exits import EXIT_CODES as DATABASE_EXITS
from components.db.database import Database
from components.db.migrations import migrate


def sealed_and_seq(text, seq=None):
    """
    ``(envelope, seq)`` from the command's JSON argument, a bare envelope
    (``seq`` given) or a state dict holding one; EnvelopeError("malformed")
    when it is neither.
    """
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise envelope.EnvelopeError("malformed", "the payload is not JSON ({})".format(error))
    if envelope.is_envelope(payload):
        if seq is None:
            raise SystemExit("--seq is needed with a bare envelope")
        return payload, seq
    if not isinstance(payload, dict) or "value" not in payload or "seq" not in payload:
        raise envelope.EnvelopeError("malformed", "expected an envelope with --seq, or a state dict with value and seq")
    return payload["value"], payload["seq"]


def main(argv=None, prog="python -m components.e2e", known_user=None):
    """
    The command line; ends with SystemExit (``components.core.exits.react``).
    ``known_user(settings, username)`` (a Deferred: None when the user exists,
    else the refusal line) is asked before ``rotate --user`` creates a key;
    the user directory is the auth layer's, so ``reactive-hub e2e`` (through
    :mod:`components.auth.e2e_command`) passes it.
    """
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    settings = Settings()
    parser.add_argument("--grace", type=int, default=settings.get(e2e_settings.E2E_KEY_GRACE),
                        help="seconds a retired key still opens envelopes (default E2E_KEY_GRACE or 3600)")
    commands = parser.add_subparsers(dest="command", required=True)
    rotate = commands.add_parser("rotate", help="rotate data keys")
    who = rotate.add_mutually_exclusive_group(required=True)
    who.add_argument("--user")
    who.add_argument("--all", action="store_true")
    decrypt = commands.add_parser("decrypt", help="open an envelope (or a state dict holding one)")
    decrypt.add_argument("--user", required=True)
    decrypt.add_argument("--topic", required=True)
    decrypt.add_argument("--seq", type=int, default=None, help="needed when passing a bare envelope")
    decrypt.add_argument("payload", help="JSON of the envelope or of the state dict")
    options = parser.parse_args(argv)

    @defer.inlineCallbacks
    def run(reactor):
        db = Database(settings.get(db_settings.DATABASE_URL))
        try:
            yield migrate(db, "e2e_keys", MIGRATIONS)
            keys = UserKeys(db, load_kek(settings), grace=options.grace)
            if options.command == "rotate":
                if options.all:
                    count = yield keys.rotate_all()
                    print("rotated {} user key(s)".format(count))
                else:
                    refusal = None if known_user is None else (yield known_user(settings, options.user))
                    if refusal is not None:
                        print("error: " + refusal, file=sys.stderr)
                        raise SystemExit(1)
                    kid = yield keys.rotate(options.user)
                    print("new key {} for {}".format(kid, options.user))
                return
            sealed, seq = sealed_and_seq(options.payload, options.seq)
            key = yield keys.key(options.user, envelope.parse(sealed)[0])
            if key is None:
                raise envelope.EnvelopeError("unknown_key", "no usable key for this envelope")
            print(json.dumps(envelope.open_envelope(key, options.topic, seq, sealed), indent=2, ensure_ascii=False))
        except envelope.EnvelopeError as refusal:
            print("refused ({}): {}".format(refusal.code, refusal), file=sys.stderr)
            raise SystemExit(1)
        finally:
            db.close()
    react(run, refusals=DATABASE_EXITS)

