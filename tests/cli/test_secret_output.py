"""components.core.secretfiles.write_private: secrets a command writes are 0600 whatever the umask."""

import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from components.core.secretfiles import write_private


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class WritePrivateTests(SynchronousTestCase):
    """write_private creates or replaces a file readable by its owner only."""

    def setUp(self):
        self.directory = self.mktemp()

    def test_new_file_under_open_umask(self):
        """Under umask 000 the file is still 0600 and its new folder 0700; the text is written; the path returned."""
        previous = os.umask(0)
        self.addCleanup(os.umask, previous)
        path = write_private(os.path.join(self.directory, "devices", "a.env"), "SECRET=1\n")
        self.assertEqual(path, os.path.abspath(os.path.join(self.directory, "devices", "a.env")))
        self.assertEqual((mode(path), mode(os.path.dirname(path))), (0o600, 0o700))
        with open(path) as handle:
            self.assertEqual(handle.read(), "SECRET=1\n")

    def test_replaces_a_readable_file(self):
        """An existing world-readable file is made 0600 and its old content replaced."""
        os.makedirs(self.directory)
        path = os.path.join(self.directory, "a.env")
        with open(path, "w") as handle:
            handle.write("old and longer content\n")
        os.chmod(path, 0o644)
        write_private(path, "new\n")
        self.assertEqual(mode(path), 0o600)
        with open(path) as handle:
            self.assertEqual(handle.read(), "new\n")

    def test_old_file_holders_never_see_the_secret(self):
        """Whoever opened the old world-readable file, or holds another link to it, keeps the old content only."""
        os.makedirs(self.directory)
        path = os.path.join(self.directory, "a.env")
        other = os.path.join(self.directory, "other-link")
        with open(path, "w") as handle:
            handle.write("old\n")
        os.chmod(path, 0o644)
        os.link(path, other)
        with open(path) as reader:
            write_private(path, "SECRET=1\n")
            self.assertEqual(reader.read(), "old\n")
        with open(other) as handle:
            self.assertEqual(handle.read(), "old\n")
        self.assertEqual((mode(path), mode(other)), (0o600, 0o644))
        self.assertEqual(sorted(os.listdir(self.directory)), ["a.env", "other-link"])

    def test_symlink_refused(self):
        """A symlink planted at the path is not followed."""
        os.makedirs(self.directory)
        target = os.path.join(self.directory, "elsewhere")
        link = os.path.join(self.directory, "a.env")
        os.symlink(target, link)
        self.assertRaises(OSError, write_private, link, "SECRET=1\n")
        self.assertFalse(os.path.exists(target))


class KeysOutsideCheckoutTests(SynchronousTestCase):
    """reactive-hub keys refuses a directory inside a git checkout (private keys one `git add` from published)."""

    def setUp(self):
        self.checkout = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.checkout, ".git"))

    def test_inside_checkout_refused(self):
        """A directory in a checkout: SystemExit naming it and the checkout, nothing created."""
        from components.auth import keygen
        target = os.path.join(self.checkout, "keys")
        self.assertEqual(keygen.inside_checkout(target), self.checkout)
        stop = self.assertRaises(SystemExit, keygen.main, [target])
        self.assertIn("inside the git checkout " + self.checkout, str(stop.code))
        self.assertFalse(os.path.exists(target))

    def test_node_secrets_and_outside_allowed(self):
        """The node directory's git-ignored .crossbar/secrets, or a directory with no checkout above it, is fine."""
        from components.auth import keygen
        self.assertIsNone(keygen.inside_checkout(os.path.join(self.checkout, ".crossbar", "secrets", "prod")))
        self.assertIsNone(keygen.inside_checkout("/"))
