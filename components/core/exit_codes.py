"""
The exit codes of the hub's commands (``reactive-hub`` and the ``python -m``
forms), one meaning each:

- ``OK`` (0): done.
- ``FAILURE`` (1): the command ran and could not do what was asked (a
  refused name, a password not accepted, a failed post).
- ``USAGE`` (2): the command line is wrong (argparse's own code).
- ``CONFIG`` (78, ``EX_CONFIG``): a setting or the installation cannot be
  used. A node worker that refuses to start exits with it; Crossbar's
  controller then stops the node with its own code 1 (``crossbar start``
  maps every failed worker to 1), so the refusal line, not the node's code,
  tells why.
- ``INTERRUPTED`` (130): stopped with Ctrl-C (128 + SIGINT, as shells count).

Some commands add their own codes between 3 and 63 (``device``: 3 no such
device, 4 unavailable); their ``--help`` says so.
"""

OK = 0
FAILURE = 1
USAGE = 2
CONFIG = 78
INTERRUPTED = 130
