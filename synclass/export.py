"""One-file export: a recorded lesson composed into one H.264 / AAC MP4.

Reads the lesson's ``manifest.json`` (issue 5 contract, section 2), decodes
its track files with PyAV one frame at a time (nothing is held beyond the
frame on show and one frame of look-ahead per track), composes the picture
in YUV 4:2:0 with numpy / OpenCV and encodes it with libx264 and FFmpeg's AAC.

Layout (1280x720 by default; every size scales with the output):

* **No courseware on show**: the teacher's camera fills the frame (aspect
  kept, black bars if it is not 16:9). Each on-stage classroom is a
  picture-in-picture tile, a quarter of the frame's width, along the bottom
  edge from the right corner leftwards, 16 px (at 720p) from the edges.
* **Courseware on show** (the teacher shares a screen): the courseware takes
  the left three quarters (960x540, so slide text stays legible), the right
  quarter is a column of 320x180 tiles — the teacher on top, then each
  on-stage classroom — level with the courseware's top edge (higher when
  three classrooms need the room). Lesson-recording systems and Zoom's
  "shared screen with active speaker" recordings look like this, so a
  teacher replaying the lesson finds a familiar page.
* A tile keeps its picture's aspect (a 4:3 classroom camera is
  pillarboxed). At most three classroom tiles; more classrooms on stage
  at once are left out (the three that went on stage first are shown).
* Multiple tracks of one slot (the teacher republished the camera): the
  one that started last is shown.

Time: every track is placed at its manifest ``offset_s``; its own timestamps
(relative to its first frame) place each frame, so the gaps of a paused
(muted) producer stay gaps. A video holds its last frame until the next
one (a paused camera shows its last picture; still courseware sends few
frames). Before a track's first frame and after its end (``offset_s`` +
``duration_s``, or its last frame if later) it is not on show: the
courseware layout becomes the camera layout, a classroom tile goes away,
the teacher's region is black. The lesson lasts ``ended_at - started_at``
when the manifest has an end, else until the end of its last track.

Audio: every audio track (teacher mic, on-stage classrooms' mics) is
decoded, downmixed to mono at 48 kHz, placed at its offset, summed and
clipped to full scale; AAC mono, 96 kbps.

The lesson's title, teacher, subject, school, room and date go into the MP4
metadata. The file is written under a temporary name next to ``out`` and
renamed at the end, so a failed or interrupted export leaves no partial
file at ``out``.
"""

from __future__ import annotations

import dataclasses
import datetime
import fractions
import json
import logging
import math
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

logger = logging.getLogger(__name__)

AUDIO_RATE = 48000
AUDIO_CHUNK_S = 1.0  # audio is mixed and encoded a second at a time
MAX_CLASSROOM_TILES = 3
BLACK_YUV = (16, 128, 128)  # limited-range black

Progress = Callable[[float], None]


class ExportError(Exception):
    """An export that cannot be done; the message is what the user reads."""


# --- the manifest -------------------------------------------------------------------------------
def read_manifest(lesson_dir: Path) -> dict[str, Any]:
    path = Path(lesson_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"no manifest.json in {lesson_dir}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tracks"), list):
        raise ExportError(f"{path} is not a lesson manifest")
    if manifest.get("version", 1) != 1:
        raise ExportError(f"{path}: manifest version {manifest.get('version')!r} is not supported")
    return manifest


def find_lesson(lesson: str, recordings_dir: Path) -> Path:
    """A lesson directory from a session id (looked up in ``recordings_dir``),
    a lesson directory, or its manifest.json."""
    path = Path(lesson)
    if path.is_file():
        return path.parent
    if path.is_dir() and (path / "manifest.json").is_file():
        return path
    if lesson and os.sep not in lesson and lesson not in (".", ".."):
        candidate = Path(recordings_dir) / lesson
        if (candidate / "manifest.json").is_file():
            return candidate
    if path.is_dir():
        raise ExportError(f"no manifest.json in {lesson}")
    raise ExportError(f"no lesson {lesson} in {recordings_dir}")


def lesson_duration(manifest: dict[str, Any]) -> float:
    """``ended_at - started_at`` when the lesson has ended, else the end of its last track."""
    started, ended = manifest.get("started_at"), manifest.get("ended_at")
    if isinstance(started, (int, float)) and isinstance(ended, (int, float)) and ended > started:
        return float(ended - started)
    ends = [_num(t.get("offset_s")) + _num(t.get("duration_s")) for t in manifest["tracks"]]
    return max(ends, default=0.0)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _metadata(manifest: dict[str, Any]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for key, field in (("title", "title"), ("artist", "teacher_name"), ("genre", "subject")):
        if manifest.get(field):
            meta[key] = str(manifest[field])
    place = " / ".join(str(manifest[f]) for f in ("school_name", "room_name") if manifest.get(f))
    if place:
        meta["album"] = place
    if isinstance(manifest.get("started_at"), (int, float)):
        when = datetime.datetime.fromtimestamp(manifest["started_at"], tz=datetime.timezone.utc)
        meta["date"] = when.isoformat(timespec="seconds").replace("+00:00", "Z")
    meta["comment"] = f"synclass lesson {manifest.get('session_id', '')}".strip()
    return meta


# --- layout ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int


def _even(v: float) -> int:
    return max(2, int(round(v / 2)) * 2)


def plan_layout(width: int, height: int, courseware: bool, classrooms: int) -> dict[str, Rect]:
    """Regions of the output for ``teacher``, ``courseware`` and ``classroom0``.. (see module doc)."""
    classrooms = min(classrooms, MAX_CLASSROOM_TILES)
    tile_w = _even(width / 4)
    tile_h = _even(tile_w * 9 / 16)
    regions: dict[str, Rect] = {}
    if courseware:
        main_w = width - tile_w
        main_h = min(height, _even(main_w * 9 / 16))
        main_y = (height - main_h) // 4 * 2
        regions["courseware"] = Rect(0, main_y, main_w, main_h)
        # the column starts level with the courseware's top, higher if its tiles need the room
        top = max(0, min(main_y, height - (1 + classrooms) * tile_h)) // 2 * 2
        regions["teacher"] = Rect(main_w, top, tile_w, tile_h)
        for i in range(classrooms):
            regions[f"classroom{i}"] = Rect(main_w, top + (i + 1) * tile_h, tile_w, tile_h)
    else:
        regions["teacher"] = Rect(0, 0, width, height)
        margin = _even(height / 45)
        for i in range(classrooms):
            x = width - margin - (i + 1) * tile_w - i * margin
            regions[f"classroom{i}"] = Rect(x, height - margin - tile_h, tile_w, tile_h)
    return regions


def fit(src_w: int, src_h: int, box: Rect) -> Rect:
    """The largest even-sized rect of the source's aspect centred in ``box``."""
    scale = min(box.w / src_w, box.h / src_h)
    w = min(box.w, _even(src_w * scale))
    h = min(box.h, _even(src_h * scale))
    return Rect(box.x + (box.w - w) // 2 // 2 * 2, box.y + (box.h - h) // 2 // 2 * 2, w, h)


# --- video sources -----------------------------------------------------------------------------
class VideoSource:
    """One video track, decoded forward in time; ``frame`` is the picture on show."""

    def __init__(self, path: Path, entry: dict[str, Any]) -> None:
        self.name = entry.get("file", path.name)
        self.role = str(entry.get("role", ""))
        self.source = str(entry.get("source", ""))
        self.start = max(0.0, _num(entry.get("offset_s")))
        self.end_hint = self.start + max(0.0, _num(entry.get("duration_s")))
        self.container = av.open(str(path))
        if not self.container.streams.video:
            self.container.close()
            raise ValueError("no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self._frames = self._decode()
        self._next: Optional[tuple[float, av.VideoFrame]] = None
        self.frame: Optional[av.VideoFrame] = None
        self.seq = 0  # counts the frames shown
        self.exhausted = False
        self.last_t = self.start
        self._reformatter = VideoReformatter()

    def _decode(self) -> Iterator[tuple[float, av.VideoFrame]]:
        tb = self.stream.time_base or fractions.Fraction(1, 1000)
        pts0: Optional[int] = None
        t = self.start
        try:
            for frame in self.container.decode(self.stream):
                if frame.pts is not None:
                    if pts0 is None:
                        pts0 = frame.pts
                    t = self.start + float((frame.pts - pts0) * tb)
                yield t, frame
        except av.FFmpegError as exc:  # an interrupted file's torn tail
            logger.warning("%s: decoding stopped at %.1f s: %s", self.name, t, exc)

    def advance(self, t: float) -> None:
        """Show the latest frame whose time is <= t."""
        while not self.exhausted:
            if self._next is None:
                self._next = next(self._frames, None)
                if self._next is None:
                    self.exhausted = True
                    break
            if self._next[0] > t:
                break
            self.last_t, self.frame = self._next
            self._next = None
            self.seq += 1

    def on_show(self, t: float) -> bool:
        if t < self.start or self.frame is None:
            return False
        if not self.exhausted:
            return True
        return t < max(self.end_hint, self.last_t + 0.1)

    def planes(self, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The frame on show scaled to w x h (even), as Y, U, V arrays."""
        frame = self.frame
        assert frame is not None
        if frame.format.name != "yuv420p":
            frame = self._reformatter.reformat(frame, format="yuv420p")
        fw, fh = frame.width, frame.height
        out = []
        sizes = ((fw, fh, w, h), ((fw + 1) // 2, (fh + 1) // 2, w // 2, h // 2),
                 ((fw + 1) // 2, (fh + 1) // 2, w // 2, h // 2))
        for plane, (pw, ph, tw, th) in zip(frame.planes, sizes):
            arr = np.frombuffer(plane, dtype=np.uint8).reshape(ph, plane.line_size)[:, :pw]
            if (pw, ph) != (tw, th):
                interp = cv2.INTER_AREA if tw < pw else cv2.INTER_LINEAR
                arr = cv2.resize(arr, (tw, th), interpolation=interp)
            out.append(arr)
        return out[0], out[1], out[2]

    def close(self) -> None:
        self._frames.close()
        self.container.close()


# --- audio sources -----------------------------------------------------------------------------
class AudioSource:
    """One audio track as (first sample index on the lesson's timeline, mono float32 samples)."""

    def __init__(self, path: Path, entry: dict[str, Any]) -> None:
        self.name = entry.get("file", path.name)
        self.start = max(0.0, _num(entry.get("offset_s")))
        self.container = av.open(str(path))
        if not self.container.streams.audio:
            self.container.close()
            raise ValueError("no audio stream")
        self.stream = self.container.streams.audio[0]
        self.resampler = av.AudioResampler(format="fltp", layout="mono", rate=AUDIO_RATE)
        self.chunks = self._chunks()
        self.pending: Optional[tuple[int, np.ndarray]] = None

    def _chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        tb = self.stream.time_base or fractions.Fraction(1, 1000)
        pts0: Optional[int] = None
        cursor = int(round(self.start * AUDIO_RATE))
        try:
            for frame in self.container.decode(self.stream):
                if frame.pts is not None:
                    if pts0 is None:
                        pts0 = frame.pts
                    at = int(round((self.start + float((frame.pts - pts0) * tb)) * AUDIO_RATE))
                    if abs(at - cursor) > AUDIO_RATE // 20:  # a gap (paused producer) or drift
                        cursor = at
                for out in self.resampler.resample(frame):
                    samples = out.to_ndarray()[0]
                    yield cursor, samples
                    cursor += len(samples)
        except av.FFmpegError as exc:
            logger.warning("%s: decoding stopped at %.1f s: %s", self.name, cursor / AUDIO_RATE, exc)

    def close(self) -> None:
        self.chunks.close()
        self.container.close()


def mix(sources: list[AudioSource], a: int, b: int) -> np.ndarray:
    """Samples [a, b) of the lesson: every source summed, clipped to full scale."""
    out = np.zeros(b - a, dtype=np.float32)
    for src in sources:
        while True:
            chunk = src.pending if src.pending is not None else next(src.chunks, None)
            src.pending = None
            if chunk is None:
                break
            start, data = chunk
            end = start + len(data)
            if start >= b:
                src.pending = chunk
                break
            lo, hi = max(start, a), min(end, b)
            if hi > lo:
                out[lo - a:hi - a] += data[lo - start:hi - start]
            if end > b:
                src.pending = chunk
                break
    np.clip(out, -1.0, 1.0, out=out)
    return out


# --- composition -------------------------------------------------------------------------------
class Compositor:
    """Draws the output picture from the sources on show; reuses it while nothing changed."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.canvas = np.empty((height * 3 // 2, width), dtype=np.uint8)
        quarter = (width // 2) * (height // 2)
        chroma = self.canvas[height:].reshape(-1)
        self.y = self.canvas[:height]
        self.u = chroma[:quarter].reshape(height // 2, width // 2)
        self.v = chroma[quarter:].reshape(height // 2, width // 2)
        self._key: Any = None
        self._frame: Optional[av.VideoFrame] = None

    def compose(self, shown: list[tuple[str, VideoSource]], courseware: bool) -> av.VideoFrame:
        classrooms = sum(1 for slot, _ in shown if slot.startswith("classroom"))
        regions = plan_layout(self.width, self.height, courseware, classrooms)
        key = (courseware, tuple((slot, id(src), src.seq) for slot, src in shown))
        if key == self._key and self._frame is not None:
            return self._frame
        self.y.fill(BLACK_YUV[0])
        self.u.fill(BLACK_YUV[1])
        self.v.fill(BLACK_YUV[2])
        for slot, src in shown:
            box = regions.get(slot)
            if box is None or src.frame is None:
                continue
            if slot.startswith("classroom"):  # a tile: black behind a picture of another aspect
                self._fill(box)
            r = fit(src.frame.width, src.frame.height, box)
            y, u, v = src.planes(r.w, r.h)
            self.y[r.y:r.y + r.h, r.x:r.x + r.w] = y
            cy, cx = r.y // 2, r.x // 2
            self.u[cy:cy + r.h // 2, cx:cx + r.w // 2] = u
            self.v[cy:cy + r.h // 2, cx:cx + r.w // 2] = v
        self._key = key
        self._frame = av.VideoFrame.from_ndarray(self.canvas, format="yuv420p")
        return self._frame

    def _fill(self, box: Rect) -> None:
        self.y[box.y:box.y + box.h, box.x:box.x + box.w] = BLACK_YUV[0]
        cy, cx = box.y // 2, box.x // 2
        self.u[cy:cy + box.h // 2, cx:cx + box.w // 2] = BLACK_YUV[1]
        self.v[cy:cy + box.h // 2, cx:cx + box.w // 2] = BLACK_YUV[2]


def _slots(videos: list[VideoSource], t: float) -> tuple[list[tuple[str, VideoSource]], bool]:
    """Which source fills which slot at time t, and whether courseware is on show."""
    on = [v for v in videos if v.on_show(t)]
    teacher = [v for v in on if v.source == "camera" and v.role == "teacher"]
    courseware = [v for v in on if v.source == "courseware"]
    others = sorted((v for v in on if v.source != "courseware" and not (v.source == "camera" and v.role == "teacher")),
                    key=lambda v: v.start)
    shown: list[tuple[str, VideoSource]] = []
    if courseware:
        shown.append(("courseware", max(courseware, key=lambda v: v.start)))
    if teacher:
        shown.append(("teacher", max(teacher, key=lambda v: v.start)))
    for i, v in enumerate(others[:MAX_CLASSROOM_TILES]):
        shown.append((f"classroom{i}", v))
    return shown, bool(courseware)


# --- export -------------------------------------------------------------------------------------
def export_lesson(
    lesson_dir: Path,
    out: Path,
    progress: Optional[Progress] = None,
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 15,
    preset: str = "veryfast",
    crf: int = 23,
) -> dict[str, Any]:
    """Compose the lesson in ``lesson_dir`` into one MP4 at ``out`` (see the module doc).

    ``progress`` is called with the share done (0.0 .. 1.0), at most once per
    percent, and with 1.0 at the end. Raises ExportError with the user's message.
    """
    if width % 2 or height % 2 or width < 64 or height < 64:
        raise ExportError(f"bad output size {width}x{height} (even, at least 64x64)")
    lesson_dir, out = Path(lesson_dir), Path(out)
    manifest = read_manifest(lesson_dir)
    lesson = manifest.get("session_id") or lesson_dir.name
    entries = [t for t in manifest["tracks"] if isinstance(t, dict)]
    video_entries = [t for t in entries if t.get("kind") == "video"]
    if not video_entries:
        raise ExportError(f"lesson {lesson} has no video tracks")
    if not out.parent.is_dir():
        raise ExportError(f"cannot write {out}: no such directory {out.parent}")
    duration = lesson_duration(manifest)
    if duration <= 0:
        raise ExportError(f"lesson {lesson} is empty")

    videos: list[VideoSource] = []
    audios: list[AudioSource] = []
    tmp_name: Optional[str] = None
    try:
        for entry in entries:
            kind = entry.get("kind")
            if kind not in ("video", "audio"):
                continue
            name = str(entry.get("file", ""))
            if not name or Path(name).name != name or name.startswith("."):
                logger.warning("lesson %s: track %r left out: not a file name", lesson, name)
                continue
            path = lesson_dir / name
            try:
                if kind == "video":
                    videos.append(VideoSource(path, entry))
                else:
                    audios.append(AudioSource(path, entry))
            except (OSError, ValueError, av.FFmpegError) as exc:
                logger.warning("lesson %s: track %s left out: %s", lesson, entry.get("file"), exc)
        if not videos:
            raise ExportError(f"lesson {lesson} has no readable video tracks")

        # a hidden name in the same directory, so the rename is atomic; created with the umask
        tmp_name = str(out.parent / f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
        frames = _encode(manifest, videos, audios, Path(tmp_name), out, duration, width, height, fps,
                         preset, crf, progress)
        os.replace(tmp_name, out)
        tmp_name = None
    finally:
        for src in [*videos, *audios]:
            src.close()
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    if progress is not None:
        progress(1.0)
    return {"out": str(out), "duration_s": round(frames / fps, 3), "width": width, "height": height,
            "frames": frames}


def _encode(manifest: dict[str, Any], videos: list[VideoSource], audios: list[AudioSource], path: Path,
            out: Path, duration: float, width: int, height: int, fps: int, preset: str, crf: int,
            progress: Optional[Progress]) -> int:
    total = max(1, math.ceil(duration * fps - 1e-6))
    total_samples = int(round(total / fps * AUDIO_RATE))
    try:
        path.touch(exist_ok=False)  # PyAV opens the file only at the first packet
        container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        container.metadata.update(_metadata(manifest))
        vstream = container.add_stream("libx264", rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        vstream.options = {"preset": preset, "crf": str(crf)}
        vstream.codec_context.gop_size = fps * 4  # a key frame every 4 s: quick seeking
        astream = container.add_stream("aac", rate=AUDIO_RATE)
        astream.layout = "mono"
        astream.bit_rate = 96000
        compositor = Compositor(width, height)
        audio_at = 0
        audio_step = int(AUDIO_RATE * AUDIO_CHUNK_S)
        last_pct = -1
        for i in range(total):
            t = i / fps
            while audio_at < total_samples and audio_at <= (t + AUDIO_CHUNK_S) * AUDIO_RATE:
                end = min(total_samples, audio_at + audio_step)
                aframe = av.AudioFrame.from_ndarray(mix(audios, audio_at, end).reshape(1, -1), format="fltp",
                                                    layout="mono")
                aframe.sample_rate = AUDIO_RATE
                aframe.pts = audio_at
                aframe.time_base = fractions.Fraction(1, AUDIO_RATE)
                container.mux(astream.encode(aframe))
                audio_at = end
            for v in videos:
                v.advance(t + 0.5 / fps)
            shown, courseware = _slots(videos, t)
            frame = compositor.compose(shown, courseware)
            frame.pts = i
            frame.time_base = fractions.Fraction(1, fps)
            container.mux(vstream.encode(frame))
            pct = (i + 1) * 100 // total
            if progress is not None and pct != last_pct and pct < 100:
                last_pct = pct
                progress(round((i + 1) / total, 4))
        container.mux(vstream.encode(None))
        container.mux(astream.encode(None))
    finally:
        container.close()
    return total
