"""
The docs' runnable command blocks, run as a newcomer runs them: a fenced
```` ```bash ```` block right after a ``<!-- runnable -->`` line, in the README
and every page of the site (in the nav's order), executed by bash against a
real node.

The commands run in a fresh temporary directory holding what a clone has after
``make start``: ``.venv`` (a link to this one) and ``.crossbar`` (the running
test node's directory, with its databases and development secrets). The environment gives
what the docs name: ``HUB`` (the node's URL), ``PORT``, ``ALICE_PASSWORD`` (for
the first-user step) and the node's ``JWT_SECRET``. The blocks of one page run
in one bash process, in order, with ``set -eo pipefail``, so a page may load
variables in one block and use them in the next; pages run one after another,
the README first, so a later page may use what an earlier one made (the user
``alice``).
"""

import os
import re

import yaml
from twisted.internet import defer, utils
from twisted.trial import unittest

from tests.support.node import REPO, checkout_node

MARKER = re.compile(r"^<!-- runnable -->\n```bash\n(.*?)^```", re.M | re.S)
PASSWORD = "docs-walk-password-1"


def pages():
    """The README, then every page of the site's nav in its order (paths relative to the repository)."""
    with open(os.path.join(REPO, "mkdocs.yml")) as handle:
        config = yaml.safe_load(handle)
    found = ["README.md"]

    def walk(entries):
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            if isinstance(value, list):
                walk(value)
            else:
                found.append(os.path.join(config.get("docs_dir", "docs"), value))
    walk(config["nav"])
    return found


def runnable_blocks(text):
    """The runnable bash blocks of a page's text, in order."""
    return MARKER.findall(text)


def page_blocks():
    """``[(page, [block, ...])]`` for every page holding runnable blocks."""
    result = []
    for page in pages():
        with open(os.path.join(REPO, page)) as handle:
            blocks = runnable_blocks(handle.read())
        if blocks:
            result.append((page, blocks))
    return result


class ExtractionTests(unittest.SynchronousTestCase):

    def test_marker(self):
        """Only a bash block right after the marker is runnable; a plain block or an sh block is not."""
        text = ("```bash\nnot this\n```\n<!-- runnable -->\n```bash\necho one\necho two\n```\n"
                "<!-- runnable -->\n```sh\nnot this either\n```\n")
        self.assertEqual(runnable_blocks(text), ["echo one\necho two\n"])

    def test_pages_have_blocks(self):
        """The README's first user, logging in and a device post are among the runnable blocks."""
        found = dict(page_blocks())
        for page in ("README.md", "docs/auth.md", "docs/iot.md"):
            self.assertIn(page, found)


class WalkTests(unittest.TestCase):
    timeout = 120

    def setUp(self):
        self.node = checkout_node(self, "docs-walk")
        self.workdir = os.path.dirname(self.node.directory)
        return self.node.start()

    def environment(self):
        """A newcomer's shell: no hub settings of the developer's, the node's secret, what the docs name."""
        env = {name: value for name, value in self.node.env.items()
               if name in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "JWT_SECRET", "PORT")}
        env.update({"HUB": self.node.http, "ALICE_PASSWORD": PASSWORD})
        return env

    @defer.inlineCallbacks
    def test_blocks_run(self):
        """Every page's runnable blocks exit 0 against the node, in the order a newcomer reads them."""
        env = self.environment()
        for page, blocks in page_blocks():
            script = "set -eo pipefail\n" + "\n".join(blocks)
            out, err, code = yield utils.getProcessOutputAndValue("/bin/bash", ("-c", script), env=env,
                                                                  path=self.workdir)
            report = "{}: runnable blocks failed ({}):\n{}\n--- stdout\n{}\n--- stderr\n{}".format(
                page, code, script, out.decode(errors="replace"), err.decode(errors="replace"))
            self.assertEqual(code, 0, report)
