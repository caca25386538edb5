"""One-file export (synclass.export, ``synclass export``) on real PyAV files.

The lesson (7 s, started_at + 7 s = ended_at):
  teacher camera  colour A  0.4 .. 7.0 s  VP8 640x360 15 fps, nothing recorded 5.0 .. 5.6 s (muted)
  teacher mic     330 Hz    0.3 .. 7.0 s  Opus, nothing recorded 4.5 .. 5.5 s
  courseware      colour B  1.0 .. 6.0 s  VP8 640x360 5 fps
  classroom cam   colour C  2.0 .. 4.0 s  H.264 in MKV, 320x240 (4:3)
  classroom mic   880 Hz    2.0 .. 4.0 s  Opus
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import pytest

from synclass import cli
from synclass.export import ExportError, Rect, export_lesson, find_lesson, lesson_duration, plan_layout
from tests.export_fixtures import TrackSpec, audio_rms, frames_at, mean_rgb, write_lesson

A = (200, 40, 40)  # teacher camera: red
B = (40, 60, 200)  # courseware: blue
C = (40, 200, 60)  # classroom: green
BLACK = (0, 0, 0)
REPO = Path(__file__).resolve().parents[1]


def lesson_tracks() -> list[TrackSpec]:
    return [
        TrackSpec("01-teacher-camera", "video", "teacher", "camera", offset_s=0.4, duration_s=6.6,
                  width=640, height=360, colour=A, gaps=[(4.6, 5.2)]),
        TrackSpec("02-teacher-mic", "audio", "teacher", "mic", offset_s=0.3, duration_s=6.7, tone_hz=330,
                  gaps=[(4.2, 5.2)]),
        TrackSpec("03-teacher-courseware", "video", "teacher", "courseware", offset_s=1.0, duration_s=5.0,
                  width=640, height=360, fps=5, colour=B),
        TrackSpec("04-classroom-r2-camera", "video", "classroom", "camera", offset_s=2.0, duration_s=2.0,
                  width=320, height=240, colour=C, codec="h264", room_id="r2", room_name="Village school"),
        TrackSpec("05-classroom-r2-mic", "audio", "classroom", "mic", offset_s=2.0, duration_s=2.0, tone_hz=880,
                  room_id="r2", room_name="Village school"),
    ]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recordings")
    write_lesson(root / "s-lesson", lesson_tracks(), duration_s=7.0, title="Fractions", subject="Maths",
                 teacher_name="Ms Li")
    write_lesson(root / "s-audio-only", [TrackSpec("01-teacher-mic", "audio", "teacher", "mic", duration_s=1.0)])
    return root


@pytest.fixture(scope="module")
def exported(recordings: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[float]]:
    out = tmp_path_factory.mktemp("out") / "lesson.mp4"
    shares: list[float] = []
    result = export_lesson(recordings / "s-lesson", out, shares.append)
    return out, result, shares


def close(actual: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 25) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected))


# --- layout --------------------------------------------------------------------------------------
@pytest.mark.parametrize("courseware, classrooms, expected", [
    (False, 0, {"teacher": Rect(0, 0, 1280, 720)}),
    (False, 2, {"teacher": Rect(0, 0, 1280, 720), "classroom0": Rect(944, 524, 320, 180),
                "classroom1": Rect(608, 524, 320, 180)}),
    (True, 0, {"courseware": Rect(0, 90, 960, 540), "teacher": Rect(960, 90, 320, 180)}),
    (True, 2, {"courseware": Rect(0, 90, 960, 540), "teacher": Rect(960, 90, 320, 180),
               "classroom0": Rect(960, 270, 320, 180), "classroom1": Rect(960, 450, 320, 180)}),
    (True, 3, {"courseware": Rect(0, 90, 960, 540), "teacher": Rect(960, 0, 320, 180),
               "classroom0": Rect(960, 180, 320, 180), "classroom1": Rect(960, 360, 320, 180),
               "classroom2": Rect(960, 540, 320, 180)}),
    (False, 5, {"teacher": Rect(0, 0, 1280, 720), "classroom0": Rect(944, 524, 320, 180),
                "classroom1": Rect(608, 524, 320, 180), "classroom2": Rect(272, 524, 320, 180)}),
])
def test_layout_puts_courseware_large_and_people_in_tiles(courseware: bool, classrooms: int,
                                                         expected: dict[str, Rect]) -> None:
    assert plan_layout(1280, 720, courseware, classrooms) == expected


@pytest.mark.parametrize("manifest, expected", [
    ({"started_at": 100.0, "ended_at": 160.5, "tracks": [{"offset_s": 1, "duration_s": 30}]}, 60.5),
    ({"started_at": 100.0, "ended_at": None, "tracks": [{"offset_s": 1, "duration_s": 30},
                                                         {"offset_s": 20.5, "duration_s": 12}]}, 32.5),
    ({"started_at": 100.0, "tracks": []}, 0.0),
])
def test_lesson_lasts_until_its_end_or_its_last_track(manifest: dict[str, Any], expected: float) -> None:
    assert lesson_duration(manifest) == pytest.approx(expected)


# --- the exported file ---------------------------------------------------------------------------
def test_export_is_one_h264_aac_mp4_as_long_as_the_lesson(exported: tuple[Path, dict[str, Any], list[float]]) -> None:
    out, result, _ = exported
    assert result["out"] == str(out) and (result["width"], result["height"]) == (1280, 720)
    with av.open(str(out)) as container:
        assert container.format.name.split(",")[0] == "mov"
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and (video.width, video.height) == (1280, 720)
        assert audio.codec_context.name == "aac" and audio.sample_rate == 48000
        assert container.duration / 1e6 == pytest.approx(7.0, abs=0.3)
        assert float(video.duration * video.time_base) == pytest.approx(7.0, abs=0.3)
        meta = container.metadata
        assert (meta.get("title"), meta.get("artist"), meta.get("genre")) == ("Fractions", "Ms Li", "Maths")
        assert meta.get("date") == "2025-11-23T01:06:40Z"
    assert result["duration_s"] == pytest.approx(7.0, abs=0.1)
    assert not [p for p in out.parent.iterdir() if p.name != out.name]  # no temporary file left


def test_frames_show_each_source_in_its_region_while_it_is_on(
        exported: tuple[Path, dict[str, Any], list[float]]) -> None:
    out, _, _ = exported
    pictures = frames_at(out, [0.2, 0.7, 1.5, 3.0, 4.5, 5.3, 6.5])
    # before the first frame: black
    assert close(mean_rgb(pictures[0.2], 0, 0, 1280, 720), BLACK)
    # teacher alone: the whole frame
    assert close(mean_rgb(pictures[0.7], 0, 0, 1280, 720), A)
    # courseware large on the left, the teacher in the column's top tile, nothing below it
    for t in (1.5, 3.0, 4.5):
        assert close(mean_rgb(pictures[t], 20, 110, 920, 500), B), t
        assert close(mean_rgb(pictures[t], 980, 100, 280, 160), A), t
    assert close(mean_rgb(pictures[1.5], 970, 280, 300, 160), BLACK)
    # the classroom on stage (2..4 s): a tile under the teacher; its 4:3 picture pillarboxed (240 of 320)
    assert close(mean_rgb(pictures[3.0], 1010, 280, 220, 160), C)
    assert close(mean_rgb(pictures[3.0], 962, 280, 30, 160), BLACK)
    assert close(mean_rgb(pictures[4.5], 970, 280, 300, 160), BLACK)
    # the teacher's camera paused 5.0 .. 5.6 s: its last picture stays
    assert close(mean_rgb(pictures[5.3], 0, 0, 1280, 720), mean_rgb(pictures[4.5], 0, 0, 1280, 720), 3)
    assert close(mean_rgb(pictures[5.3], 980, 100, 280, 160), A)
    # courseware over (6 s): the teacher fills the frame again
    assert close(mean_rgb(pictures[6.5], 0, 0, 1280, 720), A)


def test_audio_mixes_teacher_and_classroom_at_their_offsets(
        exported: tuple[Path, dict[str, Any], list[float]]) -> None:
    out, _, _ = exported
    teacher = audio_rms(out, 1.0, 1.8)
    both = audio_rms(out, 2.2, 3.8)
    assert 0.15 < teacher < 0.26  # one 0.3 sine: rms 0.21
    assert both > teacher * 1.3  # two 0.3 sines: rms 0.3
    assert audio_rms(out, 4.8, 5.1) < 0.02  # the teacher's mic was muted
    assert audio_rms(out, 5.8, 6.8) > 0.15


def test_progress_rises_to_one(exported: tuple[Path, dict[str, Any], list[float]]) -> None:
    _, _, shares = exported
    assert shares == sorted(shares) and shares[-1] == 1.0 and shares[0] < 0.1
    assert 10 < len(shares) <= 101


# --- failures ------------------------------------------------------------------------------------
def test_a_failed_export_leaves_no_file(recordings: Path, tmp_path: Path) -> None:
    out = tmp_path / "lesson.mp4"

    def fail(share: float) -> None:
        if share > 0.3:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        export_lesson(recordings / "s-lesson", out, fail)
    assert list(tmp_path.iterdir()) == []


def test_lesson_is_found_by_id_directory_or_manifest(recordings: Path) -> None:
    lesson = recordings / "s-lesson"
    assert find_lesson("s-lesson", recordings) == lesson
    assert find_lesson(str(lesson), Path("/nonexistent")) == lesson
    assert find_lesson(str(lesson / "manifest.json"), Path("/nonexistent")) == lesson
    with pytest.raises(ExportError, match="^no lesson s-nope in /srv/recordings$"):
        find_lesson("s-nope", Path("/srv/recordings"))
    with pytest.raises(ExportError, match=f"^no manifest.json in {recordings}$"):
        find_lesson(str(recordings), recordings)


@pytest.mark.parametrize("argv, message", [
    (["s-nope"], "synclass export: no lesson s-nope in {R}\n"),
    (["s-audio-only"], "synclass export: lesson s-audio-only has no video tracks\n"),
    (["s-lesson", "--out", "{T}/missing/x.mp4"], "synclass export: cannot write {T}/missing/x.mp4: "
                                                  "no such directory {T}/missing\n"),
])
def test_cli_errors_exit_2_with_their_message(recordings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              argv: list[str], message: str) -> None:
    argv = [a.replace("{T}", str(tmp_path)) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "x.mp4")]
    code = cli.main(["export", *argv, "--recordings-dir", str(recordings), "--progress", "json"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == message.replace("{R}", str(recordings)).replace("{T}", str(tmp_path))
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []


def _cli(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "synclass", "export", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(REPO), env=env)


def test_cli_json_progress_ends_with_done(recordings: Path, tmp_path: Path) -> None:
    out = tmp_path / "lesson.mp4"
    proc = _cli("s-lesson", "--data-dir", str(recordings.parent), "--recordings-dir", str(recordings),
                "--out", str(out), "--progress", "json")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    shares = [line["progress"] for line in lines[:-1]]
    assert shares == sorted(shares) and shares[-1] == 1.0
    assert lines[-1]["done"] is True and lines[-1]["out"] == str(out)
    assert lines[-1]["duration_s"] == pytest.approx(7.0, abs=0.1)
    assert out.stat().st_size > 10_000
    assert stderr == ""


def test_cli_terminated_midway_leaves_no_file(recordings: Path, tmp_path: Path) -> None:
    out = tmp_path / "lesson.mp4"
    proc = _cli(str(recordings / "s-lesson"), "--out", str(out), "--progress", "json")
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert json.loads(first)["progress"] < 0.5
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_bench_export_prints_one_json_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synclass.bench import export as bench_export

    assert bench_export.main(["--minutes", "0.1", "--cache-dir", str(tmp_path), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    result = json.loads(lines[0])
    assert result["lesson_s"] == pytest.approx(6.0, abs=0.1) and result["frames"] == 90
    assert result["export_s"] > 0 and result["speed"] == pytest.approx(result["lesson_s"] / result["export_s"], rel=0.02)
    assert result["cpu_s"] > 0 and result["size"] == "1280x720"
    with av.open(str(tmp_path / "bench-lesson-0.1min-v1" / "01-teacher-camera.webm")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("vp8", 1280, 720)
