"""Who receives whom and who may moderate whom: pure functions, no state.

A classroom receives every track of the teacher automatically, and the
tracks of a classroom while that classroom is on stage; the teacher receives
every classroom automatically (her grid); an admin (inspector, 巡课) may
receive anything on request and is never received: inspectors are silent,
they do not publish and nobody sees them in participant lists except other
admins.

Moderation (hands, stage, mute) is the teacher's; a classroom raises and
lowers its own hand and mutes itself; admins watch and do not moderate.
``refusal`` gives the exact ``forbidden`` message of docs/protocol.md, or
None when the request is allowed.
"""

from __future__ import annotations

from typing import Literal

from .tokens import Role

Subscription = Literal["auto", "stage", "allowed", "forbidden"]

# subscriber role -> publisher role -> what happens
SUBSCRIPTIONS: dict[Role, dict[Role, Subscription]] = {
    "teacher": {"teacher": "allowed", "classroom": "auto", "admin": "forbidden"},
    "classroom": {"teacher": "auto", "classroom": "stage", "admin": "forbidden"},
    "admin": {"teacher": "allowed", "classroom": "allowed", "admin": "forbidden"},
}

Action = Literal["raise_hand", "lower_hand", "lower_all_hands", "stage", "unstage", "mute"]
MutedBy = Literal["self", "teacher"]


def subscription(subscriber: Role, publisher: Role) -> Subscription:
    """``auto``: subscribed on join and on every new producer; ``stage``: the
    same, but only while the publisher is on stage (refused otherwise);
    ``allowed``: on request; ``forbidden``: a request is refused."""
    return SUBSCRIPTIONS[subscriber][publisher]


def receives(subscriber: Role, publisher: Role, publisher_on_stage: bool) -> bool:
    """Does ``subscriber`` get the publisher's tracks without asking?"""
    rule = subscription(subscriber, publisher)
    return rule == "auto" or (rule == "stage" and publisher_on_stage)


def may_publish(role: Role) -> bool:
    return role != "admin"


def sees_participant(viewer: Role, subject: Role) -> bool:
    """Admins are visible to admins only."""
    return subject != "admin" or viewer == "admin"


def may_start_session(role: Role) -> bool:
    return role == "teacher"


def refusal(
    action: Action,
    actor: Role,
    *,
    target_id: str | None = None,
    target_role: Role | None = None,
    muting: bool = True,
    source: str = "mic",
    muted_by: MutedBy | None = None,
) -> str | None:
    """The ``forbidden`` message for ``actor`` doing ``action``, or None if allowed.

    ``target_id``/``target_role`` name the participant acted on (None: the
    actor itself); for ``mute``, ``muting`` is False for an unmute and
    ``muted_by`` is who turned the source off now.
    """
    on_self = target_id is None
    if action == "raise_hand":
        return None if actor == "classroom" else f"role {actor} may not raise a hand"
    if action in ("lower_hand", "lower_all_hands"):
        if actor == "admin":
            return "role admin may not lower hands"
        if actor == "classroom" and action == "lower_all_hands":
            return "role classroom may not lower all hands"
        if actor == "classroom" and not on_self:
            return "role classroom may not lower another participant's hand"
        return None
    if action in ("stage", "unstage"):
        if actor != "teacher":
            return f"role {actor} may not stage participants"
        if target_role != "classroom":
            return f"only classrooms go on stage; {target_id} is a {target_role}"
        return None
    # mute
    if actor == "admin":
        return "role admin may not mute participants"
    if not on_self:
        if actor != "teacher":
            return f"role {actor} may only mute itself"
        if target_role != "classroom":
            return f"only classrooms can be muted by the teacher; {target_id} is a {target_role}"
        return None
    if not muting and muted_by == "teacher" and actor != "teacher":
        return (
            f"your {source} was turned off by the teacher; "
            "only the teacher can turn it back on"
        )
    return None


def priority(kind: str, source: str | None, publisher: Role) -> int:
    """Who keeps bandwidth when a link is short (lower first): sound, then the
    courseware, then the teacher's camera, then other classrooms."""
    if kind == "audio":
        return 0
    if source == "courseware":
        return 1
    return 2 if publisher == "teacher" else 3
