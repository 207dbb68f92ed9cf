"""
The documentation site: ``mkdocs build --strict`` of the repository's
``mkdocs.yml`` succeeds with no warning (a broken link or anchor, a page left
out of the nav, a benchmark result file that an include names and that is
gone all fail it), and the README stays a front door: the two set-up
commands first, under 200 lines.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.join(REPO, "README.md")


def build_site(config=os.path.join(REPO, "mkdocs.yml")):
    """``(exit code, output)`` of a strict build of ``config`` into a temporary directory (removed after)."""
    site = tempfile.mkdtemp(prefix="hub-site-")
    try:
        command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", config,
                   "--site-dir", site]
        done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=180)
        return done.returncode, done.stdout.decode(errors="replace")
    finally:
        shutil.rmtree(site, ignore_errors=True)


def warnings(output):
    """The WARNING and ERROR lines of a build's output."""
    return [line for line in output.splitlines() if re.match(r"\s*(WARNING|ERROR)\b", line)]


class SiteTests(SynchronousTestCase):

    def test_strict_build(self):
        """The site builds in strict mode and mkdocs says nothing above INFO."""
        code, output = build_site()
        self.assertEqual(code, 0, output)
        self.assertEqual(warnings(output), [], output)

    def test_broken_anchor_fails(self):
        """The strict build does fail on a link to a missing anchor (so the test above can fail): built from a
        copy of the site's sources with one broken link added."""
        copy = tempfile.mkdtemp(prefix="hub-site-src-")
        self.addCleanup(shutil.rmtree, copy, True)
        shutil.copy(os.path.join(REPO, "mkdocs.yml"), copy)
        shutil.copytree(os.path.join(REPO, "docs"), os.path.join(copy, "docs"))
        with open(os.path.join(copy, "docs", "index.md"), "a") as handle:
            handle.write("\n[nowhere](auth.md#no-such-heading)\n")
        code, output = build_site(os.path.join(copy, "mkdocs.yml"))
        self.assertNotEqual(code, 0, output)
        self.assertIn("no-such-heading", output)


def headings(text):
    """The Markdown headings of ``text`` outside fenced code blocks."""
    found, fence = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,6} ", line):
            found.append(line)
    return found


class HeadingTests(SynchronousTestCase):

    def test_no_file_paths(self):
        """No heading of the docs names a file (a path or a module file): anchors stay when code moves."""
        names = re.compile(r"\.(py|js|json|html|md|sh)\b|components/|web/|tests/")
        docs = os.path.join(REPO, "docs")
        for name in sorted(os.listdir(docs)):
            if name.endswith(".md"):
                with open(os.path.join(docs, name)) as handle:
                    for heading in headings(handle.read()):
                        self.assertIsNone(names.search(heading), "{}: {}".format(name, heading))

    def test_headings_outside_code(self):
        """A shell comment in a code block is not a heading."""
        self.assertEqual(headings("# Title\n```sh\n# a comment\n```\n## Part\n"), ["# Title", "## Part"])


class ReadmeTests(SynchronousTestCase):

    def setUp(self):
        with open(README) as handle:
            self.text = handle.read()

    def test_two_commands_first(self):
        """The README's first code block holds exactly `make start` and `make test`, in that order."""
        first = re.search(r"```\w*\n(.*?)```", self.text, re.S).group(1)
        commands = [line.split("#")[0].strip() for line in first.splitlines() if line.split("#")[0].strip()]
        self.assertEqual(commands, ["make start", "make test"])

    def test_short(self):
        """The README is a front door: under 200 lines, the reference lives in docs/."""
        self.assertLess(len(self.text.splitlines()), 200)

    def test_links_resolve(self):
        """Every relative link of the README names a file or folder of the repository."""
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", self.text):
            if "://" in target:
                continue
            self.assertTrue(os.path.exists(os.path.join(REPO, target)), target)
