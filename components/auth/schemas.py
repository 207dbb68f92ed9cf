"""The master-database tables the auth feature works on: the user directory and the login sessions."""

from components.auth import directory, loginsessions

MASTER_SCHEMAS = [("directory", directory.MIGRATIONS), ("login_sessions", loginsessions.MIGRATIONS)]
