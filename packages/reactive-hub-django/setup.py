"""
The Django side of the hub alone: ``components.django_hub`` (log in once,
``push``, checks, the ``manage.py`` commands) and the hub modules it
imports, none of which imports Twisted, Crossbar, autobahn, boto3, moto or
NumPy (tests/django/test_standalone.py checks the list and installs the
wheel into a fresh venv). The version and the pins of PyJWT, cryptography
and Django are the hub's own, read from the repository's setup.cfg.

    pip wheel --no-deps -w dist packages/reactive-hub-django
"""

import configparser
import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# the Django app's packages (every module in them, its migrations and management commands included)
PACKAGES = [
    "components",   # its __init__ only: every other module of the hub lives in a folder
    "components.django_hub",
    "components.django_hub.management",
    "components.django_hub.management.commands",
    "components.django_hub.migrations",
]
# the hub's modules the app imports, and theirs (their packages' __init__ come along)
MODULES = [
    "components.core.settings",
    "components.core.core_settings",
    "components.core.clientaddress",
    "components.core.devsecrets",
    "components.core.secretfiles",
    "components.core.error_uris",
    "components.core.exit_codes",
    "components.db.sql_cursor",
    "components.db.schema_step",
    "components.e2e.e2e_settings",
    "components.e2e.envelope",
    "components.auth.auth_settings",
    "components.auth.token_signing",
    "components.auth.credentials",
]
# the hub's requirements the app needs: install_requires (PyJWT, cryptography) and the test extra (Django)
REQUIRED = ("pyjwt", "cryptography", "django")


def hub_metadata():
    """``(version, requirements)`` from the hub's setup.cfg."""
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    lines = "\n".join((config["options"]["install_requires"], config["options.extras_require"]["test"]))
    requirements = [line.strip() for line in lines.splitlines()
                    if line.strip().lower().split("[")[0].split(">")[0].split("=")[0] in REQUIRED]
    return config["metadata"]["version"], requirements


VERSION, REQUIREMENTS = hub_metadata()
# setuptools' scratch files stay beside this file (build/, git-ignored), not in the hub's source tree
SCRATCH = os.path.join(HERE, "build")
os.makedirs(SCRATCH, exist_ok=True)

setup(
    name="reactive-hub-django",
    version=VERSION,
    description="The reactive hub's Django app alone: log in once, push after commit, checks (no Twisted)",
    license="MIT",
    python_requires=">=3.11",
    package_dir={"": os.path.relpath(REPO, HERE)},
    packages=PACKAGES,
    py_modules=MODULES,
    install_requires=REQUIREMENTS,
    options={"egg_info": {"egg_base": SCRATCH}},
)
