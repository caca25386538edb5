from __future__ import annotations

import pytest

from server.policy import may_publish, sees_participant, subscription


@pytest.mark.parametrize(
    ("subscriber", "publisher", "expected"),
    [
        ("classroom", "teacher", "auto"),
        ("classroom", "classroom", "allowed"),
        ("classroom", "admin", "forbidden"),
        ("teacher", "classroom", "allowed"),
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
