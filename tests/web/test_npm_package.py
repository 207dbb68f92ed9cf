"""
``web/`` is an npm package whose entry point is ``hub.js``: ``npm pack``
ships hub.js, the modules it loads and its hand-written declarations
``hub.d.ts``, which declare every export of hub.js and no method of ``Hub``
that hub.js lacks.
"""

import json
import os
import re
import shutil
import subprocess

from twisted.trial import unittest

WEB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "web")
JS_EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function\*?|class|const|let|var)\s+(\w+)", re.MULTILINE)
DTS_EXPORT = re.compile(r"^export\s+(?:declare\s+)?(?:function|class|const|let|interface|type)\s+(\w+)",
                        re.MULTILINE)
IMPORT = re.compile(r"""import\s*(?:[\w{}\s,*]+from\s*)?\(?\s*["']\./([\w.]+)["']""")
DTS_METHOD = re.compile(r"^  (\w+)(?:<[^>]*>)?\(", re.MULTILINE)


def read(name):
    with open(os.path.join(WEB, "js", name), encoding="utf-8") as handle:
        return handle.read()


def class_body(text, name):
    """The text of ``class name`` up to the next top-level closing brace."""
    start = re.search(r"^(?:export\s+)?(?:declare\s+)?class\s+{}\b".format(name), text, re.MULTILINE).start()
    return text[start:text.index("\n}", start)]


class PackageTests(unittest.SynchronousTestCase):

    def test_manifest_exports_hub_and_types(self):
        """package.json names hub.js as the entry point and hub.d.ts as its types."""
        with open(os.path.join(WEB, "package.json")) as handle:
            manifest = json.load(handle)
        self.assertEqual(manifest["exports"]["."], {"types": "./js/hub.d.ts", "default": "./js/hub.js"})
        self.assertEqual(manifest["types"], "./js/hub.d.ts")

    def test_pack_lists_hub_and_declarations(self):
        """``npm pack --dry-run`` ships hub.js, hub.d.ts and every module hub.js and worker.js import."""
        # npm is required (make install uses it): missing, the test fails instead of skipping
        self.assertIsNotNone(shutil.which("npm"), "npm is not installed")
        done = subprocess.run(["npm", "pack", "--dry-run", "--json"], cwd=WEB, capture_output=True, text=True,
                              timeout=120, check=True)
        files = {entry["path"] for entry in json.loads(done.stdout)[0]["files"]}
        self.assertIn("js/hub.js", files)
        self.assertIn("js/hub.d.ts", files)
        for module in ("hub.js", "engine.js", "worker.js"):
            for imported in IMPORT.findall(read(module)):
                self.assertIn("js/" + imported, files, "{} imports {}".format(module, imported))

    def test_declarations_name_every_export(self):
        """Every export of hub.js is declared in hub.d.ts."""
        exported = set(JS_EXPORT.findall(read("hub.js")))
        self.assertTrue({"createHub", "Hub"} <= exported, exported)
        self.assertLessEqual(exported, set(DTS_EXPORT.findall(read("hub.d.ts"))))

    def test_declared_methods_exist(self):
        """Every method hub.d.ts declares on Hub is a method of hub.js's Hub."""
        declared = set(DTS_METHOD.findall(class_body(read("hub.d.ts"), "Hub"))) - {"constructor"}
        defined = set(re.findall(r"^  (?:async\s+)?(\w+)\(", class_body(read("hub.js"), "Hub"), re.MULTILINE))
        self.assertTrue(declared, "no method parsed from hub.d.ts")
        self.assertLessEqual(declared, defined)
