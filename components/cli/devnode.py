"""
``reactive-hub start`` and ``reactive-hub check``: the dev node as ``make
start`` and ``make check`` run it, from the virtualenv this command runs in.

``start`` checks the settings as ``check`` does (a problem: its lines and 78,
nothing started), migrates the databases (``python -m components.node
migrate``), then replaces itself with ``crossbar start --cbdir DIR`` with the dev node's
defaults: ``AWS_EMULATOR_PORT`` 4566, ``AWS_ENDPOINT_URL`` the local SNS/SQS
emulator on that port unless set (set it empty to use real AWS),
``USERSYNC_PROVISION`` on unless set. ``check`` validates the environment
against the settings registry (``components.node.setting_check``, when the
installation has it) and the node config with ``crossbar check``.
"""

import argparse
import importlib
import importlib.util
import io
import json
import os
import socket
import subprocess
import sys

from components.core import exits
from components.core.settings import node_dir
from components.node.patches import listen_interface

EMULATOR_PORT = "4566"
SETTING_CHECK = "components.node.setting_check"


def dev_environment(environ):
    """``environ`` with the dev node's defaults, as the Makefile's ``start`` sets them."""
    env = dict(environ)
    port = env.get("AWS_EMULATOR_PORT") or EMULATOR_PORT
    env["AWS_EMULATOR_PORT"] = port
    env.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:{}".format(port))  # set but empty: real AWS
    if not env.get("USERSYNC_PROVISION"):
        env["USERSYNC_PROVISION"] = "on"
    return env


def venv_program(name, executable=None):
    """The path of the program ``name`` installed beside ``executable`` (default: this Python) in its venv."""
    return os.path.join(os.path.dirname(executable or sys.executable), name)


def start_plan(cbdir, environ, executable=None, crossbar_args=()):
    """
    ``[(argv, env), (argv, env)]``: the migration to run, then the crossbar
    command to become, for the node directory ``cbdir``.
    """
    executable = executable or sys.executable
    migrate = ([executable, "-m", "components.node", "migrate"], dict(environ, CROSSBAR_DIR=cbdir))
    crossbar = ([venv_program("crossbar", executable), "start", "--cbdir", cbdir] + list(crossbar_args),
                dev_environment(environ))
    return [migrate, crossbar]


def _node_directory(parser, argv, environ):
    """Parse ``argv`` for ``--cbdir`` (default CROSSBAR_DIR, else ./.crossbar); return (options, other args)."""
    parser.add_argument("--cbdir", default=None, help="node directory (default CROSSBAR_DIR, else ./.crossbar)")
    options, rest = parser.parse_known_args(argv)
    options.cbdir = os.path.abspath(options.cbdir) if options.cbdir else node_dir(argv=[], environ=environ)
    return options, rest


def _refuse(err, message):
    err.write("error: {}\n".format(message))
    return exits.CONFIG


def _missing(cbdir, crossbar):
    """Why the dev node cannot start here, or None."""
    if not os.path.isfile(os.path.join(cbdir, "config.json")):
        return ("no node config {}: run this in the repository's root, or pass --cbdir DIR (or set CROSSBAR_DIR)"
                .format(os.path.join(cbdir, "config.json")))
    if not os.access(crossbar, os.X_OK):
        return "{} is missing: install the hub first (make install)".format(crossbar)
    return None


def listening_endpoints(config, environ):
    """
    ``[(interface, port)]``: the TCP ports a node config's transports listen
    on, resolved as the node's ``listen_interface`` patch resolves them
    (``${VAR:-default}`` interface; the dev endpoint's port ``PORT`` when set).
    """
    found = []
    for worker in config.get("workers") or []:
        for transport in worker.get("transports") or []:
            endpoint = listen_interface.resolved(transport.get("endpoint") or {}, environ)
            if endpoint.get("type") == "tcp" and isinstance(endpoint.get("port"), int):
                found.append((endpoint.get("interface") or "0.0.0.0", endpoint["port"]))
    return found


def can_listen(interface, port):
    """True when ``interface:port`` can be bound now (nothing else listens there)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in interface else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((interface, port))
        return True
    except OSError:
        return False


def _port_taken(cbdir, environ, probe):
    """Why the dev node cannot listen (a port another process holds), or None."""
    try:
        with open(os.path.join(cbdir, "config.json")) as handle:
            config = json.load(handle)
        endpoints = listening_endpoints(config, environ)
    except (OSError, ValueError):
        return None  # crossbar (or the worker's patch) names a broken config or PORT itself
    for interface, port in endpoints:
        if not probe(interface, port):
            return ("port {}:{} is taken, another node or program listens there: stop it (`ss -ltnp | grep :{}` "
                    "shows which) and start again, or give the dev node another port (PORT=8081 make start)"
                    .format(interface, port, port))
    return None


def _settings_refused(validate, cbdir, environ, err):
    """
    True after writing the settings check's lines to ``err`` when ``validate``
    (``main(argv, environ, out)``) finds a problem in the dev node's
    environment; False (and nothing written) when it passes or is None.
    """
    if validate is None:
        return False
    report = io.StringIO()
    if validate(["--cbdir", cbdir, "--unknown-names", "warning"], environ=environ, out=report) == exits.OK:
        err.write(report.getvalue() if "warning: " in report.getvalue() else "")
        return False
    err.write(report.getvalue())
    err.write("error: the node was not started; `reactive-hub check` checks again\n")
    return True


def start(argv, prog, environ=None, executable=None, run=subprocess.call, become=os.execve, err=None,
          hook=None, probe=can_listen):
    """
    ``reactive-hub start``: check the settings (every problem at once, 78)
    and that the config's ports are free (one line, 78), migrate, then
    become ``crossbar start``; returns an exit code when it cannot.
    """
    environ = os.environ if environ is None else environ
    err = sys.stderr if err is None else err
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Run the dev node as `make start` does after installing: migrate the databases, then crossbar start "
        "--cbdir DIR with AWS_EMULATOR_PORT 4566, AWS_ENDPOINT_URL the local SNS/SQS emulator on that port "
        "unless set (set it empty for real AWS) and USERSYNC_PROVISION on unless set."),
        epilog="Other options (e.g. --loglevel debug) go to crossbar start. "
               "Exit codes: 1 the migration failed, 78 a bad setting (all named), no node config or no crossbar.")
    options, rest = _node_directory(parser, argv, environ)
    (migrate_argv, migrate_env), (crossbar_argv, crossbar_env) = start_plan(options.cbdir, environ, executable, rest)
    problem = _missing(options.cbdir, crossbar_argv[0])
    if problem:
        return _refuse(err, problem)
    if _settings_refused((hook or settings_check)(), options.cbdir, crossbar_env, err):
        return exits.CONFIG
    problem = _port_taken(options.cbdir, crossbar_env, probe)
    if problem:
        return _refuse(err, problem)
    if run(migrate_argv, env=migrate_env) != 0:
        err.write("error: the migration failed (above); the node was not started\n")
        return exits.FAILURE
    become(crossbar_argv[0], crossbar_argv, crossbar_env)
    return exits.OK  # only reached when ``become`` returns (tests)


def settings_check():
    """
    The settings registry's check, ``main(argv) -> exit code``, or None when
    this installation has none (``components.node.setting_check``).
    """
    if importlib.util.find_spec(SETTING_CHECK) is None:
        return None
    return importlib.import_module(SETTING_CHECK).main


def check(argv, prog, environ=None, executable=None, run=subprocess.call, hook=settings_check, err=None):
    """
    ``reactive-hub check [--cbdir DIR] [--config FILE]``: the settings
    check (given all of ``argv``) and ``crossbar check`` of the same config;
    0 when both pass, else the settings check's code or 78.
    """
    environ = os.environ if environ is None else environ
    err = sys.stderr if err is None else err
    validate = hook()
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Validate this node's environment against the settings registry (every problem at once) and its "
        "config with crossbar check."), epilog="Exit codes: 0 valid, 78 a setting or the config is invalid.")
    parser.add_argument("--config", default="config.json",
                        help="the node config, in the node directory unless a path (config.json: the dev node; "
                             "master.json, client.json)")
    options, rest = _node_directory(parser, argv, environ)
    if rest:
        parser.error("unrecognized arguments: {}".format(" ".join(rest)))
    crossbar = venv_program("crossbar", executable)
    if not os.access(crossbar, os.X_OK):
        return _refuse(err, "{} is missing: install the hub first (make install)".format(crossbar))
    code = exits.OK if validate is None else validate(list(argv))
    command = [crossbar, "check", "--cbdir", options.cbdir, "--config", options.config]
    if run(command, env=dict(environ)) != 0:
        code = code or exits.CONFIG
    return code
