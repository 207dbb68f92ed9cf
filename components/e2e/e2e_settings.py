"""
End-to-end encryption's settings: on or off, the key-encryption key (or its
file) every node shares, and how long a retired data key still opens envelopes.
"""

from components.core.settings import BOOL, CLI, CLIENT, DEV, DJANGO, FILE, INT, MASTER, TEXT, Setting
from components.e2e.envelope import KEY_BYTES, EnvelopeError, b64decode


def kek_text(text):
    """``text`` when it is base64url of 32 bytes (the key-encryption key), else ValueError."""
    try:
        key = b64decode(text.strip(), "E2E_KEK")
    except EnvelopeError:
        raise ValueError("must be base64url of {} bytes".format(KEY_BYTES))
    if len(key) != KEY_BYTES:
        raise ValueError("must be base64url of {} bytes, got {} bytes".format(KEY_BYTES, len(key)))
    return text.strip()


E2E_ENCRYPTION = Setting(
    "E2E_ENCRYPTION", BOOL, "end-to-end encryption of private payloads; `/auth/token` then hands the user's data "
    "keys to the browser (every node then needs the shared `E2E_KEK`)", default=False,
    roles=(DEV, MASTER, CLIENT, DJANGO))
E2E_KEK = Setting(
    "E2E_KEK", TEXT, "key-encryption key (base64url of 32 bytes) wrapping every per-user data key; the master and "
    "every client node must have the same one", secret=True, parse=kek_text,
    roles=(DEV, MASTER, CLIENT, CLI, DJANGO), shown="`E2E_KEK_FILE`, else generated into `<node dir>/secrets/e2e_kek`")
E2E_KEK_FILE = Setting(
    "E2E_KEK_FILE", FILE, "a file holding the key-encryption key (`reactive-hub keys DIR` writes `DIR/e2e_kek`, "
    "mode 0600)", secret=True, roles=(DEV, MASTER, CLIENT, CLI, DJANGO),
    shown="generated on first use into `<node dir>/secrets/e2e_kek`: fine for one node, wrong for a split")
E2E_KEY_GRACE = Setting(
    "E2E_KEY_GRACE", INT, "seconds a data key retired by a rotation still opens envelopes", default=3600, minimum=0,
    roles=(DEV, MASTER, CLIENT, CLI))

SETTINGS = (E2E_ENCRYPTION, E2E_KEK, E2E_KEK_FILE, E2E_KEY_GRACE)
