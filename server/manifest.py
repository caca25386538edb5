"""A recorded lesson's manifest: ``<recordings_dir>/<session_id>/manifest.json``.

Pure functions over plain dicts (the JSON shape of docs/protocol.md,
"Recordings on disk") plus the atomic write. The manifest lists the lesson's
tracks with their wall-clock offsets from the recording's zero
(``started_at``), so a player or the export lines them up.

Times are unix seconds (floats). A track's ``offset_s`` is its first written
frame's wall clock minus the manifest's ``started_at``; the zero is the
earliest of the moment recording began and every track's first frame, so no
offset is negative.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
EXPORT_NAME = "export.mp4"
VERSION = 1
STATUSES = ("recording", "complete", "recovered")

# the lesson's own fields, in the order they are written
META_FIELDS = (
    "session_id",
    "title",
    "subject",
    "teacher_name",
    "school_id",
    "school_name",
    "lecture_room_id",
    "room_name",
)
TRACK_FIELDS = (
    "file",
    "kind",
    "source",
    "role",
    "participant_name",
    "room_id",
    "room_name",
    "codec",
    "container",
    "width",
    "height",
    "offset_s",
    "duration_s",
    "status",
    "bytes",
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def track_stem(number: int, role: str, source: str, room_id: str | None = None) -> str:
    """``01-teacher-camera``, ``04-classroom-<room id>-mic``: NN is the
    lesson's running track number. Room ids are url-safe; anything else is
    replaced so the stem is always one plain file name."""
    parts = [f"{number:02d}", role]
    if role != "teacher" and room_id:
        parts.append(_UNSAFE.sub("_", room_id))
    parts.append(source)
    return "-".join(parts)


def new_track(
    *,
    file: str,
    kind: str,
    source: str,
    role: str,
    participant_name: str,
    room_id: str | None,
    room_name: str | None,
) -> dict[str, Any]:
    """A track that has just started recording (nothing written yet)."""
    return {
        "file": file,
        "kind": kind,
        "source": source,
        "role": role,
        "participant_name": participant_name,
        "room_id": room_id,
        "room_name": room_name,
        "codec": None,
        "container": _container_of(file),
        "width": None,
        "height": None,
        "offset_s": None,
        "duration_s": 0.0,
        "status": "recording",
        "bytes": 0,
    }


def _container_of(file: str) -> str | None:
    suffix = Path(file).suffix.lower()
    return {".webm": "webm", ".mkv": "mkv"}.get(suffix)


def apply_stats(track: Mapping[str, Any], stats: Mapping[str, Any]) -> dict[str, Any]:
    """The track updated from recorder stats (seam: Recorder.stats()); the
    offset is set by ``build``, from ``first_frame_at``."""
    updated = dict(track)
    for key in ("codec", "container", "width", "height"):
        if stats.get(key) is not None:
            updated[key] = stats[key]
    if stats.get("file"):
        updated["file"] = str(stats["file"])
    updated["duration_s"] = round(float(stats.get("duration_s") or 0.0), 3)
    updated["bytes"] = int(stats.get("bytes") or 0)
    return updated


def zero_of(began_at: float, first_frames: Iterable[float | None]) -> float:
    """The recording's zero: when it began, or an earlier first frame (a
    publisher's capture clock may run a little ahead of ours)."""
    known = [t for t in first_frames if t is not None]
    return min([began_at, *known])


def build(
    meta: Mapping[str, Any],
    *,
    began_at: float,
    ended_at: float | None,
    status: str,
    tracks: list[Mapping[str, Any]],
    first_frames: list[float | None],
) -> dict[str, Any]:
    """The manifest: ``meta`` (``META_FIELDS``), the zero, and every track
    with ``offset_s`` from its first frame's wall clock (``first_frames[i]``;
    None keeps the track's offset as it is — unknown until a frame is
    written, or as recovered)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if len(first_frames) != len(tracks):
        raise ValueError("one first-frame time per track")
    zero = zero_of(began_at, first_frames)
    out_tracks = []
    for track, first in zip(tracks, first_frames, strict=True):
        entry = {key: track.get(key) for key in TRACK_FIELDS}
        if first is not None:
            entry["offset_s"] = round(first - zero, 3)
        out_tracks.append(entry)
    return {
        "version": VERSION,
        **{key: meta.get(key) for key in META_FIELDS},
        "started_at": round(zero, 3),
        "ended_at": None if ended_at is None else round(max(ended_at, zero), 3),
        "status": status,
        "tracks": out_tracks,
    }


def final_status(tracks: Iterable[Mapping[str, Any]]) -> str:
    """A finished lesson: ``recovered`` if any track had to be, else ``complete``."""
    return "recovered" if any(t.get("status") == "recovered" for t in tracks) else "complete"


def end_of_tracks(manifest: Mapping[str, Any]) -> float | None:
    """The wall clock where the last track ends (None without timed tracks)."""
    zero = float(manifest["started_at"])
    ends = [
        zero + float(t["offset_s"]) + float(t.get("duration_s") or 0.0)
        for t in manifest.get("tracks", [])
        if t.get("offset_s") is not None
    ]
    return max(ends) if ends else None


def duration_of(manifest: Mapping[str, Any]) -> float:
    """From the zero to the end (or to the last track's end while recording)."""
    end = manifest.get("ended_at")
    if end is None:
        end = end_of_tracks(manifest)
    if end is None:
        return 0.0
    return round(max(0.0, float(end) - float(manifest["started_at"])), 3)


def bytes_of(manifest: Mapping[str, Any]) -> int:
    return sum(int(t.get("bytes") or 0) for t in manifest.get("tracks", []))


def write(directory: Path, manifest: Mapping[str, Any]) -> None:
    """Atomically replace ``directory/manifest.json`` (tmp file, fsync, rename):
    a crash leaves the old manifest or the new one, never half of one."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST_NAME
    tmp = directory / f".{MANIFEST_NAME}.tmp"
    data = json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read(directory: Path) -> dict[str, Any]:
    """The manifest of a lesson directory. ``FileNotFoundError`` without one,
    ``ValueError`` with the exact problem for one that is not a manifest."""
    path = directory / MANIFEST_NAME
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"{path} is not a version {VERSION} manifest")
    if not isinstance(data.get("tracks"), list) or not isinstance(
        data.get("started_at"), (int, float)
    ):
        raise ValueError(f"{path} has no tracks or no started_at")
    if data.get("status") not in STATUSES:
        raise ValueError(f"{path} has an unknown status {data.get('status')!r}")
    return data
