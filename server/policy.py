"""Who receives whom: the role matrix, as pure functions.

A classroom receives every track of the teacher automatically; the teacher
receives nothing automatically for now (she asks for classrooms with
``subscribe``); an admin (inspector, 巡课) may receive anything and is never
received: inspectors are silent, they do not publish and nobody sees them
in participant lists except other admins.
"""

from __future__ import annotations

from typing import Literal

from .tokens import Role

Subscription = Literal["auto", "allowed", "forbidden"]

# subscriber role -> publisher role -> what happens
SUBSCRIPTIONS: dict[Role, dict[Role, Subscription]] = {
    "teacher": {"teacher": "allowed", "classroom": "allowed", "admin": "forbidden"},
    "classroom": {"teacher": "auto", "classroom": "allowed", "admin": "forbidden"},
    "admin": {"teacher": "allowed", "classroom": "allowed", "admin": "forbidden"},
}


def subscription(subscriber: Role, publisher: Role) -> Subscription:
    """``auto``: subscribed on join and on every new producer; ``allowed``: on
    request; ``forbidden``: a request is refused."""
    return SUBSCRIPTIONS[subscriber][publisher]


def may_publish(role: Role) -> bool:
    return role != "admin"


def sees_participant(viewer: Role, subject: Role) -> bool:
    """Admins are visible to admins only."""
    return subject != "admin" or viewer == "admin"


def may_start_session(role: Role) -> bool:
    return role == "teacher"
