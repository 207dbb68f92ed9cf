#!/usr/bin/env bash
# Upgrade the locked dependencies (constraints.txt): `make lock`.
#
# 1. A scratch venv ($LOCK_VENV, default .venv-lock) gets the newest versions setup.cfg's ranges allow
#    (no constraints; the hub editable, with its test and bench extras), frozen into constraints.txt.new.
# 2. There, against those versions: the patch tests (tests/node/test_registry.py, tests/node/test_boot.py
#    and every test module that imports a patch of components/node/patches/registry.py), then the
#    libraries' own suites for what the patches touch: Twisted's TCP, TLS, HTTP and reverse-proxy tests
#    and autobahn's WebSocket and WAMP serializer/protocol tests (their test-only packages are installed
#    after the freeze, so they stay out of the lock).
# 3. Only when all pass: constraints.txt is replaced and .venv reinstalled from it. With LOCK_DRY_RUN=1 it
#    stops after step 2 and leaves constraints.txt.new beside the lock (diff them to see what would move).
# A patch whose library internals changed fails its tests or refuses (security patches) here, before the lock
# moves: then adapt the patch, record the new VERIFIED versions in its module and in docs/patches.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LOCK_VENV=${LOCK_VENV:-.venv-lock}
NEW=constraints.txt.new

rm -rf "$LOCK_VENV"
"$PYTHON" -m venv "$LOCK_VENV"
"$LOCK_VENV/bin/pip" install --quiet --upgrade pip
"$LOCK_VENV/bin/pip" install --quiet --upgrade -e '.[test,bench]'
{
    sed -n '/^#/p' constraints.txt
    "$LOCK_VENV/bin/pip" freeze --exclude-editable --exclude reactive-hub
} > "$NEW"
echo "== resolved: changes against constraints.txt"
diff <(grep -v '^#' constraints.txt) <(grep -v '^#' "$NEW") || true

patch_tests=$("$LOCK_VENV/bin/python" - <<'EOF'
import glob
import re

from components.node.patches import registry

names = {"tests.node.test_registry", "tests.node.test_boot"}
modules = registry.load()
for path in sorted(glob.glob("tests/**/test_*.py", recursive=True)):
    with open(path) as handle:
        text = handle.read()
    for module in modules:
        name = module.__name__.rsplit(".", 1)[1]
        if re.search(r"components\.node\.patches\.{0}\b|from components\.node\.patches import [^\n]*\b{0}\b"
                     .format(name), text):
            names.add(path[:-3].replace("/", "."))
print(" ".join(sorted(names)))
EOF
)
echo "== patch tests: $patch_tests"
# shellcheck disable=SC2086
"$LOCK_VENV/bin/python" -m twisted.trial --jobs=2 $patch_tests

echo "== the libraries' own suites"
"$LOCK_VENV/bin/pip" install --quiet 'twisted[test]'
(
    cd "$(mktemp -d)"
    "$OLDPWD/$LOCK_VENV/bin/python" -m twisted.trial --jobs=2 twisted.internet.test.test_tcp twisted.test.test_tcp \
        twisted.protocols.test.test_tls twisted.web.test.test_http twisted.web.test.test_proxy \
        twisted.web.test.test_web
    USE_TWISTED=1 "$OLDPWD/$LOCK_VENV/bin/python" -m twisted.trial --jobs=2 autobahn.websocket.test \
        autobahn.wamp.test.test_wamp_serializer autobahn.wamp.test.test_wamp_websocket \
        autobahn.wamp.test.test_wamp_protocol
)

if [ "${LOCK_DRY_RUN:-}" = 1 ]; then
    echo "== LOCK_DRY_RUN=1: constraints.txt unchanged; the candidate is $NEW"
    exit 0
fi
mv "$NEW" constraints.txt
.venv/bin/pip install --quiet -c constraints.txt -e '.[test,bench]'
touch .venv/.installed
echo "== constraints.txt updated and .venv reinstalled from it; commit constraints.txt"
