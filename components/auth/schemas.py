"""
The master-database tables the auth feature works on: the user directory,
the login sessions, the revocation facts and the triggers that keep them.
"""

from components.auth import credentials, directory, loginsessions

MASTER_SCHEMAS = [("directory", directory.MIGRATIONS), ("login_sessions", loginsessions.MIGRATIONS),
                  ("credentials", credentials.MIGRATIONS), ("credential_triggers", credentials.TRIGGER_MIGRATIONS)]
