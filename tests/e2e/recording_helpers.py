"""Reading recorded files back with PyAV (tests only: the server never imports av)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av


@dataclass
class TrackFile:
    frames: int = 0  # decoded frames (video) or audio frames
    errors: int = 0  # packets that failed to decode
    sizes: set[tuple[int, int]] = field(default_factory=set)
    first_s: float = 0.0  # first frame's time in the file
    last_s: float = 0.0  # last frame's time in the file
    duration_s: float = 0.0  # the container's duration (0 if it does not say)


def read_track(path: Path) -> TrackFile:
    """Demux and decode a whole track file; a cut-off tail counts as the end."""
    found = TrackFile()
    with av.open(str(path)) as container:
        stream = container.streams[0]
        if container.duration is not None:
            found.duration_s = container.duration / 1_000_000
        first = None
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    found.errors += 1
                    continue
                for frame in frames:
                    found.frames += 1
                    if frame.pts is not None and frame.time_base is not None:
                        t = float(frame.pts * frame.time_base)
                        first = t if first is None else min(first, t)
                        found.last_s = max(found.last_s, t)
                    if isinstance(frame, av.VideoFrame):
                        found.sizes.add((frame.width, frame.height))
        except av.error.FFmpegError:
            pass  # the file of a killed process ends mid-cluster
        found.first_s = first or 0.0
    return found


def lesson_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "manifest.json").is_file())
