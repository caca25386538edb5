"""Retention: the policy as a table (time passed in), then a run on real
directories that deletes the oldest and keeps a lesson in progress."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from server import retention
from server.recording import Recordings, dir_bytes
from server.retention import Candidate, select
from server.store import RecordingQuery, SqliteStore

from .test_library import make_recording

DAY = 86400.0
NOW = 1_000 * DAY


def c(name: str, age_days: float, size: int, busy: bool = False) -> Candidate:
    return Candidate(name, NOW - age_days * DAY, size, busy)


@pytest.mark.parametrize(
    ("candidates", "max_age_days", "max_bytes", "deleted"),
    [
        # no limits: nothing goes
        ([c("a", 900, 10)], 0, 0, []),
        # age: strictly older than the limit
        ([c("a", 31, 1), c("b", 30, 1), c("c", 1, 1)], 30, 0, [("a", "older than 30 days")]),
        # oldest first whatever the order given
        ([c("new", 40, 1), c("old", 50, 1)], 30, 0,
         [("old", "older than 30 days"), ("new", "older than 30 days")]),
        # a lesson in progress is never deleted
        ([c("a", 90, 1, busy=True)], 30, 0, []),
        # budget: the oldest go until the rest fits
        ([c("a", 3, 50), c("b", 2, 50), c("c", 1, 50)], 0, 100, [("a", "over the 100-byte budget")]),
        ([c("a", 3, 50), c("b", 2, 50), c("c", 1, 50)], 0, 60,
         [("a", "over the 60-byte budget"), ("b", "over the 60-byte budget")]),
        # exactly on budget: kept
        ([c("a", 3, 50), c("b", 2, 50)], 0, 100, []),
        # in progress counts towards the budget but is skipped
        ([c("a", 3, 50, busy=True), c("b", 2, 50), c("c", 1, 50)], 0, 100, [("b", "over the 100-byte budget")]),
        # alone over the budget and in progress: nothing to do
        ([c("a", 1, 500, busy=True)], 0, 100, []),
        # both: age first, then whatever the budget still needs
        ([c("a", 40, 10), c("b", 5, 80), c("c", 1, 80)], 30, 100,
         [("a", "older than 30 days"), ("b", "over the 100-byte budget")]),
    ],
)
def test_retention_selects(candidates: list[Candidate], max_age_days: int, max_bytes: int,
                           deleted: list[tuple[str, str]]) -> None:
    assert select(candidates, now=NOW, max_age_days=max_age_days, max_bytes=max_bytes) == deleted


async def test_a_run_deletes_the_oldest_directories_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "recordings"
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        for i, name in enumerate(["old", "middle", "busy", "new"]):
            make_recording(root, name, started_at=1_700_000_000.0 + i * DAY,
                           status="recording" if name == "busy" else "complete")
        recordings = Recordings(store, None, root)
        await recordings.recover()  # indexes them (no media: "busy" is marked recovered)
        size = dir_bytes(root / "old")
        budget = dir_bytes(root / "new") + dir_bytes(root / "busy")  # what is left fits exactly
        busy = {"busy"}
        with caplog.at_level(logging.INFO, logger="server.retention"):
            deleted = await retention.run(recordings, max_age_days=0, max_bytes=budget,
                                          busy=lambda s: s in busy)
        assert deleted == ["old", "middle"]
        assert sorted(p.name for p in root.iterdir()) == ["busy", "new"]
        assert [e.session_id for e in await store.list_recordings(RecordingQuery())] == ["new", "busy"]
        assert f"retention deleted recording old ({size} bytes): over the {budget}-byte budget" in caplog.text
        assert await retention.run(recordings, max_age_days=0, max_bytes=0) == []
    finally:
        await store.close()


def test_the_recordings_settings_default_under_the_data_dir_and_are_checked(tmp_path: Path) -> None:
    from server.settings import load_settings

    settings = load_settings(env={}, data_dir=tmp_path)
    assert settings.recordings_root == tmp_path / "recordings"
    assert (settings.recordings_max_age_days, settings.recordings_max_bytes) == (0, 0)
    moved = load_settings(env={"SYNCLASS_RECORDINGS_DIR": "/srv/rec", "SYNCLASS_RECORDINGS_MAX_BYTES": "5000"})
    assert (moved.recordings_root, moved.recordings_max_bytes) == (Path("/srv/rec"), 5000)
    with pytest.raises(ValueError, match="^setting recordings_max_age_days must be between 0 and 36600, got -1$"):
        load_settings(env={}, recordings_max_age_days=-1)
