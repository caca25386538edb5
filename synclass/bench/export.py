"""``synclass bench export``: is a lesson exported faster than it lasted?

Writes a synthetic lesson in the recordings format (issue 5 contract,
section 2) — teacher camera 1280x720 at 15 fps, VP8 ~1.5 Mbps with motion
(a scrolling texture and a moving square); courseware 1280x720 at 5 fps, a
new slide every 10 s; teacher microphone, Opus — and times
``synclass.export.export_lesson`` on it. The lesson is encoded once (libvpx
realtime settings, ~1 min for 10 minutes) and cached under ``--cache-dir``.

The result is ONE JSON line on stdout: lesson seconds, export seconds, speed
(lesson / export: above 1 is faster than real time), CPU seconds of the
process (all threads: decoders, composition, libx264's threads).

The lesson writer (``TrackSpec``, ``write_lesson``) is also what the tests
use to make lessons (tests/export_fixtures.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import fractions
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import av
import numpy as np

AUDIO_RATE = 48000
AUDIO_FRAME = 960  # 20 ms, what browsers send
MS = fractions.Fraction(1, 1000)

# Draws frame number n (at n / fps seconds of track time) as a yuv420p array
# of shape (height * 3 // 2, width), the layout of av.VideoFrame.from_ndarray.
DrawFn = Callable[[int], np.ndarray]


# --- synthetic lessons on disk --------------------------------------------------------------------
@dataclasses.dataclass
class TrackSpec:
    """One recorded track: its manifest fields and what its file holds."""

    stem: str  # e.g. "01-teacher-camera": file = stem + ".webm" (".mkv" for h264)
    kind: str  # "video" | "audio"
    role: str  # "teacher" | "classroom"
    source: str  # "camera" | "mic" | "courseware"
    offset_s: float = 0.0
    duration_s: float = 5.0
    # video
    width: int = 320
    height: int = 180
    fps: float = 15.0
    colour: tuple[int, int, int] = (128, 128, 128)  # RGB, when no draw
    draw: Optional[DrawFn] = None
    codec: str = ""  # "" = VP8 / Opus in WebM; "h264" = H.264 in MKV
    bitrate: int = 300_000
    # audio
    tone_hz: float = 440.0
    amplitude: float = 0.3
    # spans (start, end) of track time with nothing recorded, as a paused
    # (muted) producer leaves them: the timestamps after a gap keep counting
    gaps: Sequence[tuple[float, float]] = ()
    participant_name: str = ""
    room_id: str = ""
    room_name: str = ""
    status: str = "complete"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # merged into the manifest entry


def yuv_colour(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited-range Y, U, V of an RGB colour (swscale's default)."""
    r, g, b = rgb
    y = 16 + (65.738 * r + 129.057 * g + 25.064 * b) / 256
    u = 128 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256
    v = 128 + (112.439 * r - 94.154 * g - 18.285 * b) / 256
    return int(round(y)), int(round(u)), int(round(v))


def solid_yuv(width: int, height: int, rgb: tuple[int, int, int]) -> np.ndarray:
    y, u, v = yuv_colour(rgb)
    img = np.empty((height * 3 // 2, width), dtype=np.uint8)
    img[:height] = y
    chroma = img[height:].reshape(-1)
    quarter = (width // 2) * (height // 2)
    chroma[:quarter] = u
    chroma[quarter:] = v
    return img


def _in_gap(t: float, gaps: Sequence[tuple[float, float]]) -> bool:
    return any(a <= t < b for a, b in gaps)


def _write_video(path: Path, spec: TrackSpec) -> dict[str, Any]:
    h264 = spec.codec == "h264"
    rate = fractions.Fraction(spec.fps).limit_denominator(1000)
    container = av.open(str(path), "w", format="matroska" if h264 else "webm")
    try:
        if h264:
            stream = container.add_stream("libx264", rate=rate)
            stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        else:
            stream = container.add_stream("libvpx", rate=rate)
            # a browser's realtime settings, at libvpx's fastest speed
            stream.options = {"deadline": "realtime", "cpu-used": "16", "lag-in-frames": "0"}
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.bit_rate = spec.bitrate
        stream.codec_context.time_base = MS
        stream.codec_context.gop_size = max(1, int(spec.fps * 3))
        solid = None if spec.draw is not None else solid_yuv(spec.width, spec.height, spec.colour)
        frames = 0
        for n in range(int(round(spec.duration_s * spec.fps))):
            t = n / spec.fps
            if _in_gap(t, spec.gaps):
                continue
            img = spec.draw(n) if spec.draw is not None else solid
            frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
            frame.pts = int(round(t * 1000))
            frame.time_base = MS
            container.mux(stream.encode(frame))
            frames += 1
        container.mux(stream.encode(None))
    finally:
        container.close()
    return {"codec": "h264" if h264 else "vp8", "container": "mkv" if h264 else "webm",
            "width": spec.width, "height": spec.height, "frames": frames}


def _write_audio(path: Path, spec: TrackSpec) -> dict[str, Any]:
    container = av.open(str(path), "w", format="webm")
    try:
        stream = container.add_stream("libopus", rate=AUDIO_RATE)
        stream.layout = "mono"
        stream.bit_rate = 32000
        stream.codec_context.time_base = fractions.Fraction(1, AUDIO_RATE)
        frames = 0
        phase = 2 * math.pi * spec.tone_hz / AUDIO_RATE
        for n in range(int(round(spec.duration_s * AUDIO_RATE / AUDIO_FRAME))):
            start = n * AUDIO_FRAME
            if _in_gap(start / AUDIO_RATE, spec.gaps):
                continue
            tone = np.sin(phase * (start + np.arange(AUDIO_FRAME)))
            samples = (spec.amplitude * 32767 * tone).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = start
            frame.time_base = fractions.Fraction(1, AUDIO_RATE)
            container.mux(stream.encode(frame))
            frames += 1
        container.mux(stream.encode(None))
    finally:
        container.close()
    return {"codec": "opus", "container": "webm", "width": None, "height": None, "frames": frames}


def write_track(directory: Path, spec: TrackSpec) -> dict[str, Any]:
    """Write one track's file; returns its manifest entry."""
    path = Path(directory) / (spec.stem + (".mkv" if spec.codec == "h264" else ".webm"))
    info = _write_video(path, spec) if spec.kind == "video" else _write_audio(path, spec)
    entry: dict[str, Any] = {
        "file": path.name, "kind": spec.kind, "source": spec.source, "role": spec.role,
        "participant_name": spec.participant_name or ("Teacher" if spec.role == "teacher" else "Classroom"),
        "room_id": spec.room_id, "room_name": spec.room_name,
        "codec": info["codec"], "container": info["container"],
        "width": info["width"], "height": info["height"],
        "offset_s": spec.offset_s, "duration_s": spec.duration_s,
        "status": spec.status, "bytes": path.stat().st_size,
    }
    entry.update(spec.extra)
    return entry


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """Atomically (tmp file + os.replace), as the control plane does."""
    path = Path(directory) / "manifest.json"
    tmp = path.with_name("manifest.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_lesson(
    directory: Path,
    tracks: Sequence[TrackSpec],
    *,
    session_id: Optional[str] = None,
    title: str = "Synthetic lesson",
    subject: str = "Maths",
    teacher_name: str = "Ms Test",
    started_at: float = 1763860000.0,
    duration_s: Optional[float] = None,
    status: str = "complete",
    **fields: Any,
) -> Path:
    """A lesson directory: one file per track and ``manifest.json``; returns the directory.

    ``ended_at = started_at + duration_s``; ``duration_s=None`` takes the end of
    the last track; ``status="recording"`` leaves ended_at null. ``fields``
    override or add manifest fields.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = [write_track(directory, spec) for spec in tracks]
    if duration_s is None:
        duration_s = max((t.offset_s + t.duration_s for t in tracks), default=0.0)
    manifest: dict[str, Any] = {
        "version": 1,
        "session_id": session_id or directory.name,
        "title": title, "subject": subject, "teacher_name": teacher_name,
        "school_id": "school-1", "school_name": "Test School",
        "lecture_room_id": "room-1", "room_name": "Lecture room",
        "started_at": started_at,
        "ended_at": None if status == "recording" else started_at + duration_s,
        "status": status,
        "tracks": entries,
    }
    manifest.update(fields)
    write_manifest(directory, manifest)
    return directory


# --- the benchmark's lesson ----------------------------------------------------------------------
def camera_pattern(width: int, height: int, seed: int = 1) -> DrawFn:
    """A camera-like picture in motion: a textured background scrolling 4 px a
    frame and a bright square moving over it."""
    import cv2

    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (height, width * 2), dtype=np.uint8), (0, 0), 3)
    texture = cv2.normalize(texture, None, 40, 200, cv2.NORM_MINMAX)
    bars = (np.arange(width * 2) * 7 // width % 7 * 25 + 20).astype(np.uint16)
    luma = ((texture.astype(np.uint16) + bars[None, :]) // 2).astype(np.uint8)
    u = np.tile((np.arange(width) * 7 // (width // 2) % 7 * 12 + 90).astype(np.uint8), (height // 2, 1))
    v = np.full((height // 2, width), 150, dtype=np.uint8)
    size = max(16, height // 8)
    quarter = (width // 2) * (height // 2)

    def draw(n: int) -> np.ndarray:
        shift = (n * 4) % width
        img = np.empty((height * 3 // 2, width), dtype=np.uint8)
        img[:height] = luma[:, shift:shift + width]
        x = int((width - size) * (0.5 + 0.5 * math.sin(n / 20)))
        y = int((height - size) * (0.5 + 0.5 * math.cos(n / 27)))
        img[y:y + size, x:x + size] = 235
        chroma = img[height:].reshape(-1)
        chroma[:quarter] = u[:, shift // 2:shift // 2 + width // 2].reshape(-1)
        chroma[quarter:] = v[:, shift // 2:shift // 2 + width // 2].reshape(-1)
        return img

    return draw


def slides_pattern(width: int, height: int, fps: float, seconds_per_slide: float = 10.0) -> DrawFn:
    """Courseware: a light slide with dark text-like lines, a new slide every few seconds."""
    quarter = (width // 2) * (height // 2)
    cache: dict[int, np.ndarray] = {}

    def draw(n: int) -> np.ndarray:
        slide = int(n / fps / seconds_per_slide)
        if slide not in cache:
            cache.clear()
            rng = np.random.default_rng(slide)
            img = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
            img[:height] = 225
            img[height // 12:height // 12 + height // 14, width // 10:width * 7 // 10] = 40  # the title
            for row in range(int(rng.integers(5, 9))):
                y = height // 4 + row * height // 12
                length = int(rng.integers(width // 4, width * 3 // 4))
                img[y:y + height // 40, width // 10:width // 10 + length] = 60
            img[height:].reshape(-1)[:quarter] = 118 + slide % 5 * 4
            cache[slide] = img
        return cache[slide]

    return draw


def bench_tracks(minutes: float) -> list[TrackSpec]:
    seconds = minutes * 60.0
    return [
        TrackSpec("01-teacher-camera", "video", "teacher", "camera", offset_s=0.4, duration_s=seconds - 0.4,
                  width=1280, height=720, fps=15, draw=camera_pattern(1280, 720), bitrate=1_500_000),
        TrackSpec("02-teacher-mic", "audio", "teacher", "mic", offset_s=0.3, duration_s=seconds - 0.3,
                  tone_hz=330.0),
        TrackSpec("03-teacher-courseware", "video", "teacher", "courseware", offset_s=2.0,
                  duration_s=seconds - 2.0, width=1280, height=720, fps=5, draw=slides_pattern(1280, 720, 5),
                  bitrate=500_000),
    ]


def bench_lesson(cache_dir: Path, minutes: float) -> tuple[Path, float]:
    """The benchmark's lesson under ``cache_dir`` (written once); returns it and the seconds spent writing it."""
    directory = Path(cache_dir) / f"bench-lesson-{minutes:g}min-v1"
    if (directory / "manifest.json").is_file():
        return directory, 0.0
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=directory.name + ".", dir=cache_dir))
    try:
        write_lesson(tmp, bench_tracks(minutes), session_id=directory.name, title="Benchmark lesson",
                     duration_s=minutes * 60.0)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory, time.monotonic() - t0


def without_courseware(lesson: Path) -> Path:
    """A sibling of the lesson without its courseware (links to the same files): the
    teacher's camera fills the frame the whole time, the costlier picture to encode."""
    directory = lesson.with_name(lesson.name + "-camera-only")
    if (directory / "manifest.json").is_file():
        return directory
    directory.mkdir(exist_ok=True)
    manifest = json.loads((lesson / "manifest.json").read_text(encoding="utf-8"))
    manifest["tracks"] = [t for t in manifest["tracks"] if t.get("source") != "courseware"]
    for track in manifest["tracks"]:
        link = directory / track["file"]
        if not link.exists():
            os.symlink(lesson / track["file"], link)
    write_manifest(directory, manifest)
    return directory


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: Optional[list[str]] = None) -> int:
    from synclass.export import export_lesson

    parser = argparse.ArgumentParser(prog="synclass bench export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the synthetic lesson")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "synclass-bench-export",
                        help="where the synthetic lesson is kept between runs")
    parser.add_argument("--out", type=Path, default=None, help="keep the MP4 here (default: deleted)")
    parser.add_argument("--preset", default="veryfast", help="libx264 preset of the export")
    parser.add_argument("--no-courseware", dest="courseware", action="store_false",
                        help="leave the courseware out: the teacher's camera fills the frame throughout")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 180:
        parser.error("--minutes must be in (0, 180]")

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[bench export] {message}", file=sys.stderr, flush=True)

    log(f"synthetic {args.minutes:g}-minute lesson in {args.cache_dir} (written once)")
    lesson, fixture_s = bench_lesson(args.cache_dir, args.minutes)
    if fixture_s:
        log(f"wrote it in {fixture_s:.1f} s")
    if not args.courseware:
        lesson = without_courseware(lesson)
    with tempfile.TemporaryDirectory(prefix="synclass-bench-export-") as scratch:
        out = args.out or Path(scratch) / "lesson.mp4"
        last = [-1]

        def progress(share: float) -> None:
            if not args.quiet and int(share * 10) != last[0]:
                last[0] = int(share * 10)
                log(f"export {share:.0%}")

        load = os.getloadavg()[0]
        cpu0, t0 = _cpu_s(), time.monotonic()
        result = export_lesson(lesson, out, progress, preset=args.preset)
        export_s = time.monotonic() - t0
        cpu_s = _cpu_s() - cpu0
        size = out.stat().st_size
    lesson_s = result["duration_s"]
    print(json.dumps({
        "lesson_s": lesson_s,
        "export_s": round(export_s, 2),
        "speed": round(lesson_s / export_s, 2),
        "cpu_s": round(cpu_s, 2),
        "cpu_per_lesson_s": round(cpu_s / lesson_s, 3),
        "frames": result["frames"],
        "size": f"{result['width']}x{result['height']}",
        "courseware": args.courseware,
        "preset": args.preset,
        "out_kbps": round(size * 8 / lesson_s / 1000, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "fixture_s": round(fixture_s, 1),
        "cores": os.cpu_count(),
        "load_before": round(load, 2),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
