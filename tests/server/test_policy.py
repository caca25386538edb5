from __future__ import annotations

import pytest

from server.policy import may_publish, receives, refusal, sees_participant, subscription


@pytest.mark.parametrize(
    ("subscriber", "publisher", "expected"),
    [
        ("classroom", "teacher", "auto"),
        ("classroom", "classroom", "stage"),
        ("classroom", "admin", "forbidden"),
        ("teacher", "classroom", "auto"),
        ("teacher", "teacher", "allowed"),
        ("teacher", "admin", "forbidden"),
        ("admin", "teacher", "allowed"),
        ("admin", "classroom", "allowed"),
        ("admin", "admin", "forbidden"),
    ],
)
def test_the_subscription_matrix(subscriber: str, publisher: str, expected: str) -> None:
    assert subscription(subscriber, publisher) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("role", "expected"), [("teacher", True), ("classroom", True), ("admin", False)]
)
def test_only_teachers_and_classrooms_publish(role: str, expected: bool) -> None:
    assert may_publish(role) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("viewer", "subject", "expected"),
    [
        ("classroom", "admin", False),
        ("teacher", "admin", False),
        ("admin", "admin", True),
        ("classroom", "teacher", True),
    ],
)
def test_inspectors_are_seen_by_inspectors_only(viewer: str, subject: str, expected: bool) -> None:
    assert sees_participant(viewer, subject) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("subscriber", "publisher", "on_stage", "expected"),
    [
        ("classroom", "classroom", False, False),
        ("classroom", "classroom", True, True),
        ("classroom", "teacher", False, True),
        ("teacher", "classroom", False, True),
        ("admin", "classroom", True, False),  # inspectors ask for what they watch
        ("admin", "teacher", False, False),
    ],
)
def test_who_receives_without_asking(
    subscriber: str, publisher: str, on_stage: bool, expected: bool
) -> None:
    assert receives(subscriber, publisher, on_stage) is expected  # type: ignore[arg-type]


# (action, actor, target: None = itself / a role, extra) -> exact refusal or None
TEACHER_UNMUTE = {"muting": False, "muted_by": "teacher"}
PERMISSIONS = [
    ("raise_hand", "classroom", None, {}, None),
    ("raise_hand", "teacher", None, {}, "role teacher may not raise a hand"),
    ("raise_hand", "admin", None, {}, "role admin may not raise a hand"),
    ("lower_hand", "classroom", None, {}, None),
    ("lower_hand", "classroom", "classroom", {}, "role classroom may not lower another participant's hand"),
    ("lower_hand", "teacher", "classroom", {}, None),
    ("lower_hand", "teacher", None, {}, None),
    ("lower_hand", "admin", "classroom", {}, "role admin may not lower hands"),
    ("lower_all_hands", "teacher", None, {}, None),
    ("lower_all_hands", "classroom", None, {}, "role classroom may not lower all hands"),
    ("lower_all_hands", "admin", None, {}, "role admin may not lower hands"),
    ("stage", "teacher", "classroom", {}, None),
    ("stage", "teacher", "teacher", {}, "only classrooms go on stage; P is a teacher"),
    ("stage", "classroom", "classroom", {}, "role classroom may not stage participants"),
    ("stage", "admin", "classroom", {}, "role admin may not stage participants"),
    ("unstage", "teacher", "classroom", {}, None),
    ("unstage", "classroom", "classroom", {}, "role classroom may not stage participants"),
    ("unstage", "admin", "classroom", {}, "role admin may not stage participants"),
    ("mute", "teacher", "classroom", {}, None),
    ("mute", "teacher", "classroom", TEACHER_UNMUTE, None),
    ("mute", "teacher", "teacher", {}, "only classrooms can be muted by the teacher; P is a teacher"),
    ("mute", "teacher", None, {}, None),
    ("mute", "classroom", None, {}, None),
    ("mute", "classroom", None, {"muting": False, "muted_by": "self"}, None),
    (
        "mute", "classroom", None, TEACHER_UNMUTE,
        "your mic was turned off by the teacher; only the teacher can turn it back on",
    ),
    (
        "mute", "classroom", None, {**TEACHER_UNMUTE, "source": "camera"},
        "your camera was turned off by the teacher; only the teacher can turn it back on",
    ),
    ("mute", "classroom", "classroom", {}, "role classroom may only mute itself"),
    ("mute", "admin", "classroom", {}, "role admin may not mute participants"),
    ("mute", "admin", None, {}, "role admin may not mute participants"),
]


@pytest.mark.parametrize(("action", "actor", "target", "extra", "expected"), PERMISSIONS)
def test_the_moderation_permission_table(
    action: str, actor: str, target: str | None, extra: dict[str, object], expected: str | None
) -> None:
    got = refusal(
        action,  # type: ignore[arg-type]
        actor,  # type: ignore[arg-type]
        target_id=None if target is None else "P",
        target_role=target,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )
    assert got == expected
