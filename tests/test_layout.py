"""
The layout of ``components/``: each folder is one layer or one feature, a
module imports only from its own folder or from lower ones, and no modules
import each other in a circle; every module lives in a folder and no two
modules (or folders) share a name, so a name says one job. The imports are read from the source with
``ast`` (nothing is imported), so the check also covers imports inside
functions. bench/ and tests/ keep one home for their shared helpers: the
percentile rule in bench/report.py, poll-until-condition in
tests/support/polling.py.
"""

import ast
import os

from twisted.trial.unittest import SynchronousTestCase

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "components"

# lower numbers are lower layers; folders of one rank are independent features and import each other never
RANKS = {
    "core": 0,      # component base, settings, errors, state, backoff, rate limit, batching, HTTP JSON, secret files
    "db": 1,        # the database handle and migrations
    "e2e": 2,       # end-to-end payload encryption (used by auth's /auth/token and by usersync)
    "auth": 3,      # tokens, passwords, directory, login sessions, /auth, authenticators
    "event_history": 4,  # stored events of history topics, their feed, hub.history (applications store theirs)
    "clock": 5, "counter": 5, "iot": 5, "usersync": 5, "client": 5,   # features
    "applications": 5,  # applications as clients: their registry and POST /apps/publish
    "presence": 5,     # hub.presence: who subscribes a topic, from the router's meta events
    "django_hub": 5,   # log in once: the Django app (nothing else imports it, so Django stays optional)
    "mqtt": 6,      # MQTT in for devices, through iot's device bridge; device presence
    "ops": 6,       # monitor, health, metrics (looks at what the features run)
    "node": 7,      # the assembly: configs, schema registry per database, worker patches, web UI
    "cli": 8,       # the console script reactive-hub: dispatches to every feature's command line
}
# the one module of a role that every folder may have: its package, ``python -m`` entry, command line, router component,
# and the name Django gives a Django app's migrations package (components/django_hub/migrations/)
ROLE_NAMES = {"__init__", "__main__", "cli", "component", "migrations"}


def module_files(root=REPO):
    """``{module name: path}`` of every module of the package."""
    found = {}
    for folder, _dirs, files in os.walk(os.path.join(root, PACKAGE)):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, root)[:-3].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(source, module, modules):
    """The package modules ``source`` (of ``module``) imports: a name imported from a package counts as its submodule when there is one."""
    found = set()
    package = module if module in modules and modules[module].endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = []
            for alias in node.names:
                candidate = base + "." + alias.name
                names.append(candidate if candidate in modules else base)
        else:
            continue
        found.update(name for name in names if name == PACKAGE or name.startswith(PACKAGE + "."))
    found.discard(module)
    return found


def import_graph(root=REPO):
    """``{module: set of imported package modules}``."""
    modules = module_files(root)
    graph = {}
    for module, path in modules.items():
        with open(path) as handle:
            graph[module] = imports_of(handle.read(), module, modules)
    return graph


def folder_of(module):
    """The layer or feature folder of a module (None for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def shared_names(paths):
    """``{name: sorted relative paths}`` of the module and folder names used more than once (role names aside)."""
    by_name = {}
    for path in paths:
        relative = os.path.relpath(path, REPO)
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem == "__init__":
            relative, stem = os.path.dirname(relative), os.path.basename(os.path.dirname(relative))
        if stem not in ROLE_NAMES:
            by_name.setdefault(stem, set()).add(relative)
    return {name: sorted(found) for name, found in by_name.items() if len(found) > 1}


def loose_modules(paths):
    """The modules directly in ``components/`` besides its ``__init__.py``: each belongs in a layer or feature folder."""
    top = os.path.join(REPO, PACKAGE)
    return sorted(os.path.basename(path) for path in paths
                  if os.path.dirname(path) == top and os.path.basename(path) != "__init__.py")


def upward_imports(graph, ranks=RANKS):
    """``(importer, imported)`` pairs that import sideways or upwards across folders."""
    wrong = []
    for module, targets in sorted(graph.items()):
        mine = folder_of(module)
        for target in sorted(targets):
            theirs = folder_of(target)
            if mine is None or theirs is None or mine == theirs:
                continue
            if ranks[theirs] >= ranks[mine]:
                wrong.append((module, target))
    return wrong


def circles(graph):
    """The import circles: strongly connected groups of more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


class LayoutTests(SynchronousTestCase):
    """components/ keeps its architecture: folders by layer and feature, imports only downwards, no circles."""

    def test_every_folder_has_a_rank(self):
        """A new folder must be placed in the layering before it can be used."""
        folders = {folder_of(module) for module in module_files()} - {None}
        self.assertEqual(sorted(folders - set(RANKS)), [], "folders without a place in RANKS")

    def test_no_upward_or_sideways_import(self):
        """Lower layers import no feature code; features import no other feature; nothing imports node."""
        wrong = upward_imports(import_graph())
        self.assertEqual(wrong, [], "\n".join("{} imports {} ({} -> {})".format(
            a, b, folder_of(a), folder_of(b)) for a, b in wrong))

    def test_no_import_circle(self):
        """No modules import each other in a circle, however far apart."""
        found = circles(import_graph())
        self.assertEqual(found, [], "import circles: " + "; ".join(" -> ".join(group) for group in found))


    def test_no_two_modules_share_a_name(self):
        """``bridge.py`` in two folders with two jobs misleads: each name is used once (role names aside)."""
        self.assertEqual(shared_names(module_files().values()), {})

    def test_no_loose_module_at_the_top(self):
        """A feature of one module still gets its folder (``clock/``, ``client/``)."""
        self.assertEqual(loose_modules(module_files().values()), [])


class CheckerTests(SynchronousTestCase):
    """The checks above can fail: a planted upward import and a planted circle are found and named."""

    def test_an_upward_import_is_named(self):
        """core importing a feature is reported with both module names."""
        graph = {"components.core.state": {"components.counter.store"}, "components.counter.store": set()}
        self.assertEqual(upward_imports(graph), [("components.core.state", "components.counter.store")])

    def test_a_sideways_import_between_features_is_named(self):
        """Two features of one rank may not import each other."""
        graph = {"components.iot.http_publish": {"components.counter"}, "components.counter": set()}
        self.assertEqual(upward_imports(graph), [("components.iot.http_publish", "components.counter")])

    def test_a_circle_is_found(self):
        """a -> b -> c -> a is one circle; a module importing only itself is none."""
        graph = {"components.db.a": {"components.db.b"}, "components.db.b": {"components.db.c"},
                 "components.db.c": {"components.db.a"}, "components.db.d": {"components.db.d"}}
        self.assertEqual(circles(graph), [["components.db.a", "components.db.b", "components.db.c"]])

    def test_imports_inside_functions_and_of_submodules_count(self):
        """``from pkg import sub`` is an import of the submodule, also inside a function body."""
        modules = {"components.usersync": "x/__init__.py", "components.usersync.outbox": "x/outbox.py",
                   "components.ops.monitor": "x/monitor.py"}
        source = "def f():\n    from components.usersync import outbox, CHANGED\n"
        self.assertEqual(imports_of(source, "components.ops.monitor", modules),
                         {"components.usersync.outbox", "components.usersync"})

    def test_a_shared_name_and_a_loose_module_are_named(self):
        """Two ``bridge.py`` are reported with both paths, a folder named like a module too; role names are not."""
        base = os.path.join(REPO, PACKAGE)
        paths = [os.path.join(base, *parts) for parts in (
            ("iot", "bridge.py"), ("usersync", "bridge.py"), ("iot", "cli.py"), ("node", "cli.py"),
            ("clock", "__init__.py"), ("iot", "clock.py"), ("tool.py",), ("__init__.py",))]
        self.assertEqual(shared_names(paths), {
            "bridge": ["components/iot/bridge.py", "components/usersync/bridge.py"],
            "clock": ["components/clock", "components/iot/clock.py"]})
        self.assertEqual(loose_modules(paths), ["tool.py"])


# bench/ and tests/ keep one home for their shared helpers: the percentile rule and the poll-until loop
PERCENTILE_HOME = "bench/report.py"
POLLING_HOME = "tests/support/polling.py"
POLL_HELPERS = {"eventually", "until", "blocking_eventually"}
WAITS = {"deferLater", "sleep", "wait_for_timeout"}
# loops that wait but poll for no condition: (path, enclosing function) -> why
PACED_LOOPS = {("tests/auth/test_login_limits.py", "flood_and_log_in"):
               "follows the server's Retry-After for a counted number of tries: the victim's measured login"}


def python_files(folder, root=REPO):
    """``{path relative to root: source}`` of the .py files under ``folder``."""
    found = {}
    for directory, _dirs, files in os.walk(os.path.join(root, folder)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path) as handle:
                    found[os.path.relpath(path, root)] = handle.read()
    return found


def definitions(sources, wanted):
    """``(path, name)`` of every function, at any depth, whose name ``wanted(name)`` accepts."""
    return sorted((path, node.name) for path, source in sources.items() for node in ast.walk(ast.parse(source))
                  if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and wanted(node.name))


def _waits(loop):
    for node in ast.walk(loop):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in WAITS:
                return True
    return False


def waiting_loops(sources):
    """``(path, enclosing function, line)`` of every ``while``/``for`` loop that waits (deferLater, sleep) inside."""
    found = []

    def visit(node, path, function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, path, child.name)
            elif isinstance(child, (ast.While, ast.For)) and _waits(child):
                found.append((path, function, child.lineno))
            else:
                visit(child, path, function)
    for path, source in sorted(sources.items()):
        visit(ast.parse(source), path, None)
    return found


class HelperHomeTests(SynchronousTestCase):
    """bench/ computes percentiles in one place, tests/ polls for a condition in one place."""

    def test_one_percentile_in_bench(self):
        """Every percentile function of the benchmarks is bench/report.py's (one rule: nearest rank)."""
        elsewhere = [found for found in definitions(python_files("bench"), lambda name: "percentile" in name)
                     if found[0] != PERCENTILE_HOME]
        self.assertEqual(elsewhere, [], "use bench.report.percentile / histogram_percentile")

    def test_one_poll_helper_in_tests(self):
        """``eventually``/``until`` are defined once, and no test writes its own wait-and-retry loop."""
        sources = python_files("tests")
        helpers = [found for found in definitions(sources, POLL_HELPERS.__contains__) if found[0] != POLLING_HOME]
        self.assertEqual(helpers, [], "a second poll helper: use tests.support.polling")
        loops = [found for found in waiting_loops(sources)
                 if found[0] != POLLING_HOME and found[:2] not in PACED_LOOPS]
        self.assertEqual(loops, [], "a poll loop of its own: use tests.support.polling.eventually")

    def test_paced_loops_still_exist(self):
        """An exception for a loop that is gone is removed too."""
        present = {found[:2] for found in waiting_loops(python_files("tests"))}
        self.assertEqual(set(PACED_LOOPS) - present, set())


class HelperCheckerTests(SynchronousTestCase):
    """The helper-home checks find a planted percentile and planted poll loops."""

    def test_a_percentile_and_a_poll_loop_are_found(self):
        sources = {"bench/x.py": "def p99_percentile(values):\n    return sorted(values)[-1]\n",
                   "tests/y.py": ("@defer.inlineCallbacks\ndef wait_ready(node):\n"
                                  "    while not node.ready:\n        yield task.deferLater(reactor, 0.1, lambda: None)\n"
                                  "def start(process):\n    for _ in range(50):\n        if process.up():\n"
                                  "            return\n        time.sleep(0.1)\n"
                                  "def busy():\n    while True:\n        pass\n")}
        self.assertEqual(definitions(sources, lambda name: "percentile" in name), [("bench/x.py", "p99_percentile")])
        self.assertEqual(waiting_loops(sources), [("tests/y.py", "wait_ready", 3), ("tests/y.py", "start", 6)])
