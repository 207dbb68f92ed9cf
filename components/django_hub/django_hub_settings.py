"""
The Django app's own settings: which Django database alias is the hub's
master database (it reads the hub's JWT and E2E settings as every node
does), and where and as which application ``push`` publishes.
"""

from components.core.settings import BOOL, DJANGO, DURATION, INT, TEXT, URL, Setting

HUB_DATABASE = Setting("HUB_DATABASE", TEXT, "the Django database alias that is the hub's master database (in "
                       "Django's `HUB` dict or the environment)", default="default", roles=(DJANGO,))
HUB_PUSH_URL = Setting("HUB_PUSH_URL", URL, "the hub's HTTP address `push` posts to (`<it>/apps/publish`), "
                       "e.g. `http://127.0.0.1:8080`; unset: `push` raises", roles=(DJANGO,))
HUB_APP_KEY = Setting("HUB_APP_KEY", TEXT, "the key of the application `push` publishes as "
                      "(`reactive-hub app add NAME`)", roles=(DJANGO,))
HUB_APP_SECRET = Setting("HUB_APP_SECRET", TEXT, "the secret of that application", secret=True,
                         roles=(DJANGO,))
HUB_PUSH_TIMEOUT = Setting("HUB_PUSH_TIMEOUT", DURATION, "how long one `push` request may take",
                           default=5.0, minimum=0.1, roles=(DJANGO,))
HUB_PUSH_RETRIES = Setting("HUB_PUSH_RETRIES", INT, "how often `push` retries a failed request (after 0.5 s, "
                           "1 s, 2 s ...) before it logs the event as lost", default=3, minimum=0, maximum=10,
                           roles=(DJANGO,))
HUB_PUSH_OUTBOX = Setting("HUB_PUSH_OUTBOX", BOOL, "`push` writes each event to an outbox table in the "
                          "caller's transaction; what the send after the commit misses, "
                          "`manage.py hub_push_relay` sends",
                          default=False, roles=(DJANGO,))

SETTINGS = (HUB_DATABASE, HUB_PUSH_URL, HUB_APP_KEY, HUB_APP_SECRET, HUB_PUSH_TIMEOUT, HUB_PUSH_RETRIES,
            HUB_PUSH_OUTBOX)
