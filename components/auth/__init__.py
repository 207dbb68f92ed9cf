"""
Who may do what: tokens, passwords, the user directory, login sessions and
the ``/auth`` resource, the WAMP authenticators and the key generator.
"""

# the dynamic ticket authenticator of /ws (role "authenticator")
AUTHENTICATE = "reactive.auth.authenticate"
# the dynamic cryptosign authenticator of the router-to-router link (/rlink)
PEER_AUTHENTICATE = "reactive.auth.peer"
