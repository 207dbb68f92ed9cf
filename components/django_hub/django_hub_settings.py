"""
The Django app's own setting: which Django database alias is the hub's master
database. (It reads the hub's JWT and E2E settings as every node does.)
"""

from components.core.settings import DJANGO, TEXT, Setting

HUB_DATABASE = Setting("HUB_DATABASE", TEXT, "the Django database alias that is the hub's master database (in "
                       "Django's `HUB` dict or the environment)", default="default", roles=(DJANGO,))

SETTINGS = (HUB_DATABASE,)
