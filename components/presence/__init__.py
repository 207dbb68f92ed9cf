"""
Presence: ``hub.presence(topic)`` answers how many people's sessions (and
users) subscribe a topic on this node, from the router's own session and
subscription meta events (docs/presence.md).
"""

PRESENCE = "hub.presence"
# the roles whose sessions are people; service sessions (components, router links, apps) are not presence
PEOPLE_ROLES = frozenset(["user", "admin"])
# the roles that also read the user names
NAMES_ROLES = frozenset(["admin"])
