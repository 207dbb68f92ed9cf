"""
A REGISTER the session may not make is answered ``wamp.error.not_authorized``
whether or not the procedure is registered.

Crossbar's ``Dealer.processRegister`` authorizes first, but when the
authorization is denied it only builds the ``not_authorized`` error and goes
on: for a procedure registered with the ``single`` invoke policy it answers
``wamp.error.procedure_already_exists``, for one registered with another
policy than the request's ``wamp.error.procedure_exists_invocation_policy_conflict``,
and ``not_authorized`` only for a free name. Any session (a ``user``, a
``device``) could so learn which procedures exist, with every REGISTER it may
send.

``install()`` wraps ``Dealer.processRegister``: the router's own
``authorize`` decides first (cached by the router, as in the library); a
denied REGISTER gets ``not_authorized`` and nothing else is looked at; an
allowed one (and an authorizer that fails) runs the library's code
unchanged, which authorizes again from the router's cache.

CALL, SUBSCRIBE, PUBLISH (acknowledged) run the authorization before any
existence check in the library already (``no_such_procedure`` only reaches a
caller that may call the procedure); UNREGISTER and UNSUBSCRIBE answer
``no_such_registration``/``no_such_subscription`` alike for another
session's id and an unknown one.
"""

import inspect

from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
import txaio

from components.node.patches import PatchUnavailable, names_used, replacement, unpatched

NAME = "register_authorization"
SECURITY = True
WORKERS = ("router",)
SUMMARY = ("a REGISTER the session may not make is not_authorized whether or not the procedure exists "
           "(Crossbar answered procedure_already_exists)")
UPSTREAM = "docs/upstream/register_authorization.patch"
VERIFIED = {"crossbar": "26.10.1", "autobahn": "26.11.1", "twisted": "26.10.0", "txaio": "26.6.1"}

PATCHED = "_reactive_hub_register_authorization"
_PARAMETERS = ["self", "session", "register"]


def refusal(session, register):
    """The ERROR answering ``register`` of ``session``: not authorized, naming nothing but the request."""
    return message.Error(message.Register.MESSAGE_TYPE, register.request, ApplicationError.NOT_AUTHORIZED,
                         ["session is not authorized to register procedure '{}'".format(register.procedure)])


def authorizing_first(process_register):
    """``Dealer.processRegister`` that answers a denied REGISTER itself before ``process_register`` runs."""

    def processRegister(self, session, register):
        router = self._router
        decided = router.authorize(session, register.procedure, "register", options=register.marshal_options())

        def authorized(authorization):
            allowed = authorization.get("allow", False) if isinstance(authorization, dict) else bool(authorization)
            if allowed:
                process_register(self, session, register)
            else:
                router.send(session, refusal(session, register))

        def failed(failure):
            # an authorizer that fails: the library's code calls it again and answers authorization_failed
            process_register(self, session, register)

        txaio.add_callbacks(decided, authorized, failed)

    return replacement(processRegister, authorizing_first, PATCHED)


def check_internals(dealer_class, router_class):
    """Raise PatchUnavailable naming what the dealer and router lack of what the wrapper relies on."""
    missing = []
    process = getattr(dealer_class, "processRegister", None)
    if not callable(process):
        missing.append("Dealer.processRegister")
    else:
        parameters = list(inspect.signature(process).parameters)
        if parameters != _PARAMETERS:
            missing.append("Dealer.processRegister{} (verified: ({}))".format(
                tuple(parameters), ", ".join(_PARAMETERS)))
        if "authorize" not in names_used(process):
            missing.append("Dealer.processRegister authorizing through the router")
    for name in ("authorize", "send"):
        if not callable(getattr(router_class, name, None)):
            missing.append("Router." + name)
    if not hasattr(message.Register, "marshal_options"):
        missing.append("autobahn Register.marshal_options")
    if missing:
        raise PatchUnavailable("crossbar.router differs: " + ", ".join(missing))


def install(dealer_class=None, router_class=None):
    """
    Wrap ``Dealer.processRegister`` of ``crossbar.router.dealer`` (or
    ``dealer_class``); True if patched now, False if it already was;
    PatchUnavailable when Crossbar's internals differ.
    """
    if dealer_class is None or router_class is None:
        try:
            from crossbar.router.dealer import Dealer
            from crossbar.router.router import Router
        except ImportError as error:
            raise PatchUnavailable("crossbar.router is missing: {}".format(error))
        dealer_class = dealer_class or Dealer
        router_class = router_class or Router
    if getattr(getattr(dealer_class, "processRegister", None), PATCHED, False):
        return False
    check_internals(dealer_class, router_class)
    original = unpatched(dealer_class, "processRegister", PATCHED)
    dealer_class.processRegister = authorizing_first(original)
    return True
