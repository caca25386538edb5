"""Synthetic recorded lessons on disk for tests, in the recordings format of issue 5.

``write_lesson(directory, [TrackSpec(...), ...])`` writes real media files
with PyAV — WebM (VP8 / Opus) by default, MKV (H.264) for ``codec="h264"`` —
and ``manifest.json`` (contract section 2). Video tracks are a solid colour
(``colour``, RGB) or frames from ``draw``; audio tracks a sine tone;
``gaps`` are spans with no frames, as a paused (muted) producer leaves them.

The writer lives in ``synclass.bench.export`` (the export benchmark makes its
10-minute lesson with it); this module is the tests' door to it, plus
helpers to look at what an export produced.

    from tests.export_fixtures import TrackSpec, write_lesson
    lesson = write_lesson(tmp_path / "s1", [
        TrackSpec("01-teacher-camera", "video", "teacher", "camera", offset_s=0.4, duration_s=6,
                  width=640, height=360, colour=(200, 40, 40)),
        TrackSpec("02-teacher-mic", "audio", "teacher", "mic", offset_s=0.3, duration_s=6),
    ])
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from synclass.bench.export import TrackSpec, solid_yuv, write_lesson, write_manifest, write_track, yuv_colour

__all__ = ["TrackSpec", "solid_yuv", "write_lesson", "write_manifest", "write_track", "yuv_colour",
           "frames_at", "mean_rgb", "audio_rms"]


def frames_at(path: Path, times: list[float]) -> dict[float, np.ndarray]:
    """RGB pictures of the video at the given times (the frame on show at each)."""
    wanted = sorted(times)
    out: dict[float, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        previous = None
        for frame in container.decode(stream):
            t = float(frame.time or 0.0)
            while wanted and t > wanted[0] + 1e-6:
                time_ = wanted.pop(0)
                if previous is not None:
                    out[time_] = previous.to_ndarray(format="rgb24")
            if not wanted:
                break
            previous = frame
        for t in wanted:
            if previous is not None:
                out[t] = previous.to_ndarray(format="rgb24")
    return out


def mean_rgb(img: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[int, int, int]:
    """Mean colour of a region (x, y, w, h) of an RGB picture."""
    r, g, b = img[y:y + h, x:x + w].reshape(-1, 3).mean(axis=0)
    return int(r), int(g), int(b)


def audio_rms(path: Path, start: float, end: float) -> float:
    """RMS level (full scale = 1.0) of the first audio stream between two times."""
    chunks = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            t = float(frame.time or 0.0)
            if t + frame.samples / frame.sample_rate <= start:
                continue
            if t >= end:
                break
            data = frame.to_ndarray().astype(np.float64)
            first = max(0, int((start - t) * frame.sample_rate))
            last = min(frame.samples, int((end - t) * frame.sample_rate))
            chunks.append(data[:, first:last].mean(axis=0))
    if not chunks:
        return 0.0
    samples = np.concatenate(chunks)
    return float(np.sqrt(np.mean(samples ** 2))) if samples.size else 0.0
