"""The pure parts of recording: which producers are recorded, track names,
the manifest's zero and offsets, statuses, the lesson's end."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import manifest as mf
from server.recording import ProducerView, entry_of, tracks_to_record


def p(pid: str, owner: str, role: str, source: str, layer: int = 0, on_stage: bool = False) -> ProducerView:
    kind = "audio" if source == "mic" else "video"
    return ProducerView(pid, owner, role, source, kind, layer, on_stage)


@pytest.mark.parametrize(
    ("producers", "recorded"),
    [
        ([], []),
        # the teacher's camera in three layers: only the top one (layer 0)
        ([p("c0", "t", "teacher", "camera", 0), p("c1", "t", "teacher", "camera", 1),
          p("c2", "t", "teacher", "camera", 2), p("m", "t", "teacher", "mic")], ["c0", "m"]),
        # the top layer closed: the next best is recorded
        ([p("c1", "t", "teacher", "camera", 1), p("c2", "t", "teacher", "camera", 2)], ["c1"]),
        # layers announced out of order still give the top one
        ([p("c2", "t", "teacher", "camera", 2), p("c0", "t", "teacher", "camera", 0)], ["c0"]),
        ([p("w", "t", "teacher", "courseware")], ["w"]),
        # classrooms only while on stage
        ([p("a", "k", "classroom", "camera"), p("b", "k", "classroom", "mic")], []),
        ([p("a", "k", "classroom", "camera", on_stage=True), p("b", "k", "classroom", "mic", on_stage=True),
          p("x", "j", "classroom", "camera")], ["a", "b"]),
        # admins publish nothing; unknown sources are not recorded
        ([p("z", "i", "admin", "camera"), p("s", "t", "teacher", "screen")], []),
    ],
)
def test_tracks_to_record(producers: list[ProducerView], recorded: list[str]) -> None:
    assert tracks_to_record(producers) == recorded


@pytest.mark.parametrize(
    ("number", "role", "source", "room_id", "stem"),
    [
        (1, "teacher", "camera", "room1", "01-teacher-camera"),
        (3, "teacher", "courseware", None, "03-teacher-courseware"),
        (4, "classroom", "camera", "Ab-_9", "04-classroom-Ab-_9-camera"),
        (12, "classroom", "mic", "a/../b", "12-classroom-a____b-mic"),
        (100, "teacher", "mic", None, "100-teacher-mic"),
    ],
)
def test_track_stems(number: int, role: str, source: str, room_id: str | None, stem: str) -> None:
    assert mf.track_stem(number, role, source, room_id) == stem


def track(file: str, **extra: object) -> dict[str, object]:
    return {**mf.new_track(file=file, kind="video", source="camera", role="teacher",
                           participant_name="Li", room_id="r", room_name="R"), **extra}


@pytest.mark.parametrize(
    ("began", "firsts", "zero", "offsets"),
    [
        (100.0, [100.5, 101.0], 100.0, [0.5, 1.0]),
        (100.0, [None, 103.25], 100.0, [None, 3.25]),  # no frame yet: no offset
        (100.0, [99.75, 100.25], 99.75, [0.0, 0.5]),  # a publisher's clock ahead of ours
        (100.0, [], 100.0, []),
    ],
)
def test_offsets_are_from_the_zero(began: float, firsts: list[float | None], zero: float,
                                   offsets: list[float | None]) -> None:
    tracks = [track(f"{i:02d}-teacher-camera.webm") for i in range(len(firsts))]
    manifest = mf.build({}, began_at=began, ended_at=None, status="recording", tracks=tracks, first_frames=firsts)
    assert manifest["started_at"] == zero
    assert [t["offset_s"] for t in manifest["tracks"]] == offsets


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="^status must be one of recording, complete, recovered, not 'done'$"):
        mf.build({}, began_at=0.0, ended_at=None, status="done", tracks=[], first_frames=[])


@pytest.mark.parametrize(
    ("statuses", "final"),
    [([], "complete"), (["complete"], "complete"), (["complete", "recovered"], "recovered")],
)
def test_final_status(statuses: list[str], final: str) -> None:
    assert mf.final_status([{"status": s} for s in statuses]) == final


def test_stats_fill_a_track() -> None:
    updated = mf.apply_stats(track("01-teacher-camera.webm"), {
        "file": "01-teacher-camera.mkv", "codec": "h264", "container": "mkv", "width": 1280,
        "height": 720, "duration_s": 12.34567, "bytes": 999, "started_at": 5.0, "frames": 300,
    })
    assert {k: updated[k] for k in ("file", "codec", "container", "width", "height", "duration_s", "bytes")} == {
        "file": "01-teacher-camera.mkv", "codec": "h264", "container": "mkv", "width": 1280,
        "height": 720, "duration_s": 12.346, "bytes": 999,
    }


def test_the_end_duration_and_size_come_from_the_tracks(tmp_path: Path) -> None:
    manifest = {
        "version": 1, "session_id": "s", "started_at": 1000.0, "ended_at": None, "status": "recording",
        "tracks": [track("a", offset_s=1.0, duration_s=30.0, bytes=5),
                   track("b", offset_s=20.0, duration_s=15.5, bytes=7),
                   track("c", offset_s=None, duration_s=0.0, bytes=0)],
    }
    assert mf.end_of_tracks(manifest) == 1035.5
    assert mf.duration_of(manifest) == 35.5
    assert mf.duration_of({**manifest, "ended_at": 1040.0}) == 40.0
    assert mf.bytes_of(manifest) == 12
    entry = entry_of(manifest, tmp_path)
    assert (entry.started_at, entry.ended_at, entry.duration_s, entry.bytes, entry.tracks) == (
        "1970-01-01T00:16:40.000Z", None, 35.5, 12, 3
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{", "is not valid JSON"),
        (b'{"version": 2}', "is not a version 1 manifest"),
        (b'{"version": 1, "tracks": []}', "has no tracks or no started_at"),
        (b'{"version": 1, "tracks": [], "started_at": 1, "status": "x"}', "has an unknown status 'x'"),
    ],
)
def test_a_broken_manifest_is_refused_with_the_problem(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "manifest.json").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        mf.read(tmp_path)


def test_a_missing_manifest_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        mf.read(tmp_path)
