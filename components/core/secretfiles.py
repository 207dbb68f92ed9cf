"""
Secret files in the node directory (dev JWT secret, device credentials, the
key-encryption key): created once with a random value, mode 0600. The value
is written to a private temporary file first and then linked into place, so
a reader never sees a half-written file and never has to wait for one, even
when several worker processes start at the same time. :func:`write_private`
writes a secret a command hands out (a device's credentials) the same way
private: mode 0600, never readable by others even for a moment.
"""

import errno
import os
import secrets
import tempfile


class SecretFileError(ValueError):
    """A secret file exists but holds nothing."""


def read_or_create_secret(path, make=lambda: secrets.token_urlsafe(48)):
    """
    The secret in ``path``; on first use create it with ``make()`` (default:
    48 random bytes, base64url). The first process to link its file wins;
    the others read the winner's value.
    """
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        fd, draft = tempfile.mkstemp(dir=directory, prefix=".secret-")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(make())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # another process was first: its value counts
        finally:
            os.unlink(draft)
    with open(path) as handle:
        value = handle.read().strip()
    if not value:
        raise SecretFileError("secret file {} is empty".format(path))
    return value


def write_private(path, text):
    """
    Write ``text`` to ``path`` readable by its owner only (mode 0600 whatever
    the umask, its folder created 0700), replacing what was there. The text
    goes to a new private file that then takes the path's place, so whoever
    held the old file open (or another link to it) never sees the secret,
    and nothing is written through a link. A symlink at ``path`` is refused.
    Returns the absolute path.
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.path.islink(path):
        raise OSError(errno.ELOOP, "a symbolic link is in the way", path)
    fd, draft = tempfile.mkstemp(dir=directory, prefix=".secret-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(draft, path)
    except BaseException:
        if os.path.exists(draft):
            os.unlink(draft)
        raise
    return path
