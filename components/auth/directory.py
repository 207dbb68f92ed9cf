"""
The user directory: a Django-compatible user table (``auth_user``, or a
custom user model's table named by ``AUTH_USER_TABLE``), and the queries the
hub needs on it (create, look up, check a password). Every query names the
table through :func:`table_name`; the name is validated as a plain SQL
identifier before it reaches any statement.
"""

import datetime
import re
from collections import namedtuple

from twisted.internet import threads
from twisted.logger import Logger

from components.auth import auth_settings, passwords
from components.db.database import POSTGRESQL
from components.db.migrations import Migration

USERNAME_PATTERN = re.compile(r"^[\w.@+-]{1,150}$")

# the fields an admin reads and writes through master.users.*
ADMIN_FIELDS = ("username", "first_name", "last_name", "email", "is_active", "is_staff", "is_superuser")
_COLUMNS = ("id", "username", "first_name", "last_name", "email", "is_active", "is_staff",
            "is_superuser", "last_login", "date_joined")

DEFAULT_TABLE = auth_settings.AUTH_USER_TABLE.default
HUB, DJANGO = auth_settings.AUTH_USER_TABLE_OWNER.choices
OWNERS = (HUB, DJANGO)
# Django's AbstractUser columns: a custom user model's table needs at least these
REQUIRED_COLUMNS = ("id", "password", "last_login", "is_superuser", "username", "first_name", "last_name",
                    "email", "is_staff", "is_active", "date_joined")
TABLE_NAME = auth_settings.TABLE_NAME

UserTable = namedtuple("UserTable", "name owner")
UserTable.__doc__ = """
The user table of a database: ``name`` (``AUTH_USER_TABLE``, a plain SQL
identifier, optionally schema-qualified on PostgreSQL) and ``owner``
(``AUTH_USER_TABLE_OWNER``, about the master database): ``hub`` creates
it when it is missing, ``django`` leaves it to Django's ``migrate`` and
waits for it. A client database's copy is always the hub's to create.
"""
# the table with the settings unset: Django's auth_user, created by the hub
DEFAULT_USER_TABLE = UserTable(DEFAULT_TABLE, HUB)


class UserTableError(ValueError):
    """The user table cannot be used (bad name, missing columns); the message names the table."""


class UserTableMissing(UserTableError):
    """The user table does not exist (yet) in a database whose table belongs to Django."""


def validate_table(name):
    """``name`` if it is a plain SQL identifier (optionally ``schema.table``), else UserTableError."""
    if not isinstance(name, str) or not TABLE_NAME.match(name):
        raise UserTableError("AUTH_USER_TABLE must be a plain SQL identifier such as auth_user or "
                             "accounts_user (optionally schema.table), got {!r}".format(name))
    return name


def user_table(settings):
    """The :class:`UserTable` of ``AUTH_USER_TABLE`` (auth_user) and ``AUTH_USER_TABLE_OWNER`` (hub)."""
    return UserTable(settings.get(auth_settings.AUTH_USER_TABLE), settings.get(auth_settings.AUTH_USER_TABLE_OWNER))


def table_name(table=None):
    """``table`` (validated), or ``auth_user`` when none is given (callers pass their ``user_table(settings)``)."""
    return DEFAULT_TABLE if table is None else validate_table(table)


def columns_of(cursor, table):
    """The lower-cased column names of ``table``, or None when it does not exist."""
    if cursor.dialect == POSTGRESQL:
        rows = cursor.execute("SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?)"
                              " AND attnum > 0 AND NOT attisdropped", (table,)).fetchall()
        if not rows and cursor.execute("SELECT to_regclass(?)", (table,)).fetchone()[0] is None:
            return None
    else:
        if "." in table:
            raise UserTableError("AUTH_USER_TABLE {!r}: SQLite takes no schema-qualified name".format(table))
        rows = cursor.execute("SELECT name FROM pragma_table_info(?)", (table,)).fetchall()
        if not rows:
            return None
    return {name.lower() for (name,) in rows}


def _empty_value(declared_type):
    """The neutral value of a column type: 0 for numbers, false for booleans, '' otherwise."""
    declared = (declared_type or "").lower()
    if "bool" in declared:
        return False
    if any(word in declared for word in ("int", "numeric", "decimal", "real", "double", "float")):
        return 0
    return ""


def required_extras(cursor, table):
    """
    ``{column: value}`` for the columns of ``table`` beyond Django's
    AbstractUser ones that take no NULL and have no database default (a
    custom user model's own fields: Django's ``default=`` lives in Python):
    the hub gives them their type's empty value when it inserts a user.
    """
    if cursor.dialect == POSTGRESQL:
        rows = cursor.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attrelid = to_regclass(?) AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull"
            " AND d.adbin IS NULL AND a.attidentity = '' AND a.attgenerated = ''", (table,)).fetchall()
    else:
        info = cursor.execute("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?)",
                              (table,)).fetchall()
        rows = [(name, declared) for name, declared, notnull, default, key in info
                if notnull and default is None and not key]
    return {name: _empty_value(declared) for name, declared in rows if name.lower() not in REQUIRED_COLUMNS}


def insert_user(cursor, table, row):
    """INSERT ``row`` (column -> value) into ``table``, every other required column at its neutral value."""
    row = dict(required_extras(cursor, table), **row)
    columns = sorted(row)
    cursor.execute("INSERT INTO {} ({}) VALUES ({})".format(
        table, ", ".join(columns), ", ".join("?" for _ in columns)), [row[column] for column in columns])


def _create_statement(table, dialect):
    """Django's ``auth_user`` columns in one dialect's types, under ``table``."""
    if dialect == POSTGRESQL:
        serial, boolean, timestamp = ("INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "BOOLEAN",
                                      "TIMESTAMP WITH TIME ZONE")
    else:
        serial, boolean, timestamp = "INTEGER PRIMARY KEY AUTOINCREMENT", "BOOL", "DATETIME"
    return """
        CREATE TABLE IF NOT EXISTS {table} (
            id {serial},
            password VARCHAR(128) NOT NULL,
            last_login {timestamp} NULL,
            is_superuser {boolean} NOT NULL,
            username VARCHAR(150) NOT NULL UNIQUE,
            last_name VARCHAR(150) NOT NULL,
            email VARCHAR(254) NOT NULL,
            is_staff {boolean} NOT NULL,
            is_active {boolean} NOT NULL,
            date_joined {timestamp} NOT NULL,
            first_name VARCHAR(150) NOT NULL
        )""".format(table=table, serial=serial, boolean=boolean, timestamp=timestamp)


def ensure_table(cursor, user_table):
    """
    Make sure ``user_table`` exists with at least Django's AbstractUser
    columns: a missing table is created when the hub owns it, and is
    :class:`UserTableMissing` when Django does; missing columns are a
    :class:`UserTableError` naming them. Never creates a second table.
    Returns True when it created the table.
    """
    table = validate_table(user_table.name)
    columns = columns_of(cursor, table)
    if columns is None:
        if user_table.owner == DJANGO:
            raise UserTableMissing("user table {} does not exist yet: it belongs to Django "
                                   "(AUTH_USER_TABLE_OWNER=django), run Django's migrate".format(table))
        cursor.execute(_create_statement(table, cursor.dialect))
        return True
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise UserTableError("user table {} lacks the columns {} (AUTH_USER_TABLE needs at least Django's "
                             "AbstractUser columns)".format(table, ", ".join(missing)))
    return False


def table_migrations(user_table, install=None):
    """
    The schema step of a database's user table: ensure it (see
    :func:`ensure_table`), then ``install(cursor, table name)`` its triggers.
    A Django-owned table that does not exist yet is left alone here: the
    master component waits for it (one log line) and installs the triggers
    when it appears; start-up code runs the same install again (idempotent)
    to reinstall what a drop and re-create lost.
    """
    def step(cursor):
        try:
            ensure_table(cursor, user_table)
        except UserTableMissing:
            return
        if install is not None:
            install(cursor, user_table.name)
    description = "the user table {} ({}'s) and its triggers".format(user_table.name, user_table.owner)
    return [Migration(1, description, sqlite=step, postgresql=step)]


def table_schema(user_table, install=None):
    """The ``(component, migrations)`` pair of :func:`table_migrations`, one component per table name."""
    return ("user_table." + user_table.name, table_migrations(user_table, install))


def client_migrations(user_table=DEFAULT_USER_TABLE):
    """A client database's user table ``user_table`` (no triggers: the sync writes it)."""
    # AUTH_USER_TABLE_OWNER is about the master database: a client's copy is the hub's to create
    def ensure(cursor):
        ensure_table(cursor, UserTable(user_table.name, HUB))
    return [Migration(1, "Django-compatible user table", sqlite=ensure, postgresql=ensure)]


# the client migrations of the default table (auth_user)
MIGRATIONS = client_migrations()
# on the master, version 1 created auth_user; table_schema (the table, its owner, its triggers) does it now
MASTER_MIGRATIONS = [Migration(1, "the user table is ensured by its own step", sqlite=[], postgresql=[])]


class DirectoryError(ValueError):
    """A directory operation was refused; the message says why."""


def validate_username(username):
    """Django's rules: 1-150 characters, letters, digits and ``@.+-_``."""
    if not isinstance(username, str) or not USERNAME_PATTERN.match(username):
        raise DirectoryError("username must be 1-150 letters, digits or @.+-_")
    return username


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _with_flags(user):
    """``user`` with its flags as booleans (SQLite stores 0 and 1)."""
    for flag in ("is_active", "is_staff", "is_superuser"):
        user[flag] = bool(user[flag])
    return user


def _row_to_user(row):
    return _with_flags(dict(zip(_COLUMNS, row)))


def _insert(cursor, username, encoded, first_name, last_name, email, is_superuser, is_staff, table=None):
    table = table_name(table)
    exists = cursor.execute("SELECT 1 FROM {} WHERE username = ?".format(table), (username,)).fetchone()
    if exists:
        raise DirectoryError("user {!r} already exists".format(username))
    insert_user(cursor, table, {
        "password": encoded, "last_login": None, "is_superuser": is_superuser, "username": username,
        "last_name": last_name, "email": email, "is_staff": is_staff, "is_active": True,
        "date_joined": _now().isoformat(), "first_name": first_name})
    return True


def read_profile(cursor, username, table=None):
    """The admin view of one user: the admin fields, ``date_joined`` and ``last_login`` as text; None if absent."""
    row = cursor.execute("SELECT {}, date_joined, last_login FROM {} WHERE username = ?".format(
        ", ".join(ADMIN_FIELDS), table_name(table)), (username,)).fetchone()
    if row is None:
        return None
    user = _with_flags(dict(zip(ADMIN_FIELDS + ("date_joined", "last_login"), row)))
    for stamp in ("date_joined", "last_login"):
        user[stamp] = None if user[stamp] is None else str(user[stamp])
    return user


def save_profile(cursor, fields, encoded_password, now_iso, table=None):
    """Insert or update one user from admin ``fields`` (and a hashed password); return ``(profile, created)``."""
    username = fields["username"]
    changes = {field: value for field, value in fields.items() if field != "username"}
    if encoded_password is not None:
        changes["password"] = encoded_password
    table = table_name(table)
    exists = cursor.execute("SELECT 1 FROM {} WHERE username = ?".format(table), (username,)).fetchone()
    if exists:
        if changes:
            cursor.execute("UPDATE {} SET {} WHERE username = ?".format(
                table, ", ".join("{} = ?".format(column) for column in changes)),
                list(changes.values()) + [username])
    else:
        row = {"password": passwords.make_unusable_password(), "first_name": "", "last_name": "", "email": "",
               "is_active": True, "is_staff": False, "is_superuser": False, "date_joined": now_iso}
        row.update(changes)
        row["username"] = username
        insert_user(cursor, table, row)
    return read_profile(cursor, username, table), not exists


def list_usernames(cursor, limit, offset, table=None):
    """Usernames in order, ``limit`` from ``offset``."""
    rows = cursor.execute("SELECT username FROM {} ORDER BY username LIMIT ? OFFSET ?".format(
        table_name(table)), (limit, offset)).fetchall()
    return [name for (name,) in rows]


def delete_user(cursor, username, table=None):
    """Delete one user; return how many rows went (0 or 1)."""
    return cursor.execute("DELETE FROM {} WHERE username = ?".format(table_name(table)), (username,)).rowcount


class Directory:
    """
    User records in ``db`` (a :class:`components.db.database.Database`), in
    the user table ``table`` (default: this process's ``AUTH_USER_TABLE``).
    """

    log = Logger()

    def __init__(self, db, iterations=passwords.DEFAULT_ITERATIONS, table=None):
        self.db = db
        self.iterations = iterations
        self.table = table_name(table)

    def create_user(self, username, password, first_name="", last_name="", email="",
                    is_superuser=False, is_staff=False):
        """Create a user; fire with True, or fail with DirectoryError if it exists."""
        validate_username(username)
        d = threads.deferToThread(passwords.make_password, password, iterations=self.iterations)
        d.addCallback(lambda encoded: self.db.run(
            _insert, username, encoded, first_name, last_name, email, is_superuser, is_staff, self.table))
        return d

    def set_password(self, username, password):
        """Replace a user's password; fail with DirectoryError for an unknown user."""
        def store(encoded):
            def update(cursor):
                if cursor.execute("UPDATE {} SET password = ? WHERE username = ?".format(self.table),
                                  (encoded, username)).rowcount != 1:
                    raise DirectoryError("no user {!r}".format(username))
            return self.db.run(update)
        d = threads.deferToThread(passwords.make_password, password, iterations=self.iterations)
        d.addCallback(store)
        return d

    def get_user(self, username):
        """Fire with the user's record (without the password hash) or None."""
        def read(cursor):
            row = cursor.execute("SELECT {} FROM {} WHERE username = ?".format(
                ", ".join(_COLUMNS), self.table), (username,)).fetchone()
            return _row_to_user(row) if row else None
        return self.db.run(read)

    def authenticate(self, username, password):
        """
        Fire with the user's record when ``password`` is right and the user is
        active, else None. Every refusal costs the same hashing work: an
        unknown user, an unusable password and a hash the hub cannot verify
        (logged, naming the user and the hasher) each spend one derivation of
        the hub's own format, as a wrong password against it does.
        """
        def read(cursor):
            return cursor.execute(
                "SELECT password, {} FROM {} WHERE username = ?".format(", ".join(_COLUMNS), self.table),
                (username,)).fetchone()

        def equalise(secret):
            return passwords.dummy_check(secret, self.iterations)

        def check(row):
            encoded, user = (None, None) if row is None else (row[0], _row_to_user(row[1:]))
            d = threads.deferToThread(passwords.verify, password, encoded, equalise)
            d.addCallback(decide, encoded, user)
            return d

        def decide(outcome, encoded, user):
            if outcome in (passwords.UNSUPPORTED, passwords.MALFORMED):
                self.log.warn("login of {username!r} refused: its password hash ({algorithm}) cannot be verified "
                              "by the hub ({outcome})", username=username, outcome=outcome,
                              algorithm=passwords.algorithm_of(encoded))
            if outcome == passwords.MATCH and user["is_active"]:
                return user
            return None

        if not isinstance(username, str) or not isinstance(password, str):
            return threads.deferToThread(equalise, "x").addCallback(lambda _: None)
        d = self.db.run(read)
        d.addCallback(check)
        return d

    def record_login(self, username):
        """Set ``last_login`` to now."""
        return self.db.execute("UPDATE {} SET last_login = ? WHERE username = ?".format(self.table),
                               (_now().isoformat(), username))
