"""``synclass demo``: a whole lesson on this machine in one command.

Starts a server (its own process), creates a city school with a lecture room
and N paired rural classrooms, then a synthetic teacher (moving test pattern
with a running clock as three layers, 640x480, 320x240 and 160x120 at 15
fps, as the teacher page sends its camera; a tone; and a 1280x720
courseware stream at 5 fps) and N synthetic classrooms that publish their
own small camera and tone back and decode what they receive. A third into
the lesson classroom 1 raises its hand and the teacher calls it on stage, so
the other classrooms receive it. Prints the page URLs so a person can join
from a browser. With ``--check`` it exits 0 only if every classroom decoded
the teacher's camera at its top layer and courseware at their published
sizes and her audio, the teacher decoded every classroom, the others decoded
the classroom on stage, and the server created no decoder or encoder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from media.aiortc_hooks import set_ice_host_addresses

from .client import LessonClient
from .serverproc import AdminApi, ServerProcess
from .synthetic import TestPatternTrack, ToneTrack

WIDTH, HEIGHT = 640, 480
# the camera's layers, top first (the teacher page's scaleResolutionDownBy 1, 2, 4)
CAMERA_LAYERS = ((WIDTH, HEIGHT), (WIDTH // 2, HEIGHT // 2), (WIDTH // 4, HEIGHT // 4))
CAMERA_FPS = 15  # as the teacher page sends it (and three encoders share one process here)
COURSEWARE = (1280, 720)
CLASSROOM = (240, 180)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classrooms", type=int, default=3, help="synthetic classrooms (default 3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the lesson runs (default 20)")
    parser.add_argument("--check", action="store_true", help="exit 0 only if every classroom got video and audio")
    parser.add_argument("--data-dir", type=Path, default=None, help="server data directory (default: a temp dir)")
    parser.add_argument("--port", type=int, default=None, help="server port (default: a free one)")
    parser.add_argument("--ice-address", action="append", default=None,
                        help="address the server gathers ICE candidates on (default 127.0.0.1)")


def main(args: argparse.Namespace) -> int:
    return asyncio.run(run(args))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> int:
    if args.classrooms < 1:
        say("--classrooms must be at least 1")
        return 2
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="synclass-demo-"))
    addresses = tuple(args.ice_address or ["127.0.0.1"])
    set_ice_host_addresses(["127.0.0.1"])  # our synthetic clients run on loopback
    server = ServerProcess(data_dir, port=args.port, ice_host_addresses=addresses)
    server.start()
    clients: list[LessonClient] = []
    try:
        await server.wait_ready()
        api = AdminApi(server.url, server.admin_key)
        setup = await api.lesson_setup(args.classrooms)
        teacher_token = await api.token(setup["lecture"]["id"], "teacher", "Teacher Li")
        say(f"server      {server.url}  (data in {data_dir}, log {server.log_path})")
        say(f"recordings  {data_dir / 'recordings'}  (replay: the admin page's Library)")
        say(f"admin page  {server.url}/web/admin.html?key={server.admin_key}")
        say(f"teacher     {server.url}{teacher_token['url']}")
        class_tokens = []
        for i, room in enumerate(setup["classrooms"]):
            token = await api.token(room["id"], "classroom", room["name"])
            class_tokens.append(token)
        extra = await api.token(setup["classrooms"][0]["id"], "classroom", "browser")
        say(f"classroom   {server.url}{extra['url']}   <- open in a browser to watch too")

        teacher = LessonClient(server.url, teacher_token["token"], "Teacher Li")
        clients.append(teacher)
        await teacher.connect()
        await teacher.start_session(title="Demo lesson", subject="Mathematics")
        await teacher.join()
        await teacher.publish([
            *[(TestPatternTrack(w, h, CAMERA_FPS, "synclass demo"), "camera", layer)
              for layer, (w, h) in enumerate(CAMERA_LAYERS)],
            (ToneTrack(), "mic"),
            (TestPatternTrack(*COURSEWARE, 5, "courseware"), "courseware"),
        ])
        say(f"teacher live, publishing her camera as {' + '.join(f'{w}x{h}' for w, h in CAMERA_LAYERS)} VP8 layers"
            f" + Opus + {COURSEWARE[0]}x{COURSEWARE[1]} courseware at 5 fps")

        for token, room in zip(class_tokens, setup["classrooms"]):
            # the classrooms share this process: aiortc's receive-side estimate reads
            # its event loop's stalls as a queue on the link (see LessonClient)
            classroom = LessonClient(server.url, token["token"], room["name"], remb=False)
            clients.append(classroom)
            await classroom.connect()
            await classroom.join()
            await classroom.publish([(TestPatternTrack(*CLASSROOM, 15, room["name"]), "camera"), (ToneTrack(330.0), "mic")])
        say(f"{args.classrooms} classroom(s) joined and publish back; lesson runs for {args.seconds:.0f} s")
        started = time.monotonic()
        staged: LessonClient | None = None
        while time.monotonic() - started < args.seconds:
            await asyncio.sleep(min(5.0, args.seconds / 3, args.seconds - (time.monotonic() - started)))
            if staged is None and time.monotonic() - started >= args.seconds / 3:
                staged = clients[1]
                await staged.raise_hand()
                await teacher.stage(staged.welcome["participant_id"])
                say(f"{staged.name} raised its hand; the teacher called it on stage")
            line = "  ".join(
                f"{c.name}: {sum(t.frames for t in c.tracks('video'))}v/{sum(t.frames for t in c.tracks('audio'))}a"
                for c in clients[1:]
            )
            say(f"t={time.monotonic() - started:4.0f}s  {line}")

        stats = await api.stats()
        counters = stats["media"]
        results = []
        ok = True
        teacher_id = teacher.welcome["participant_id"]
        staged_id = staged.welcome["participant_id"] if staged is not None else None
        for c in clients[1:]:
            camera = c.tracks("video", "camera", teacher_id)
            courseware = c.tracks("video", "courseware", teacher_id)
            audio = c.tracks("audio", participant_id=teacher_id)
            vframes = sum(t.frames for t in camera)
            cframes = sum(t.frames for t in courseware)
            aframes = sum(t.frames for t in audio)
            sizes = sorted({s for t in camera + courseware for s in t.sizes})
            seen_by_teacher = sum(t.frames for t in teacher.tracks("video", participant_id=c.welcome["participant_id"]))
            stage_frames = None
            if staged_id is not None and c is not staged:
                stage_frames = sum(t.frames for t in c.tracks("video", participant_id=staged_id))
            good = (vframes > 0 and cframes > 0 and aframes > 0 and (WIDTH, HEIGHT) in sizes
                    and COURSEWARE in sizes and seen_by_teacher > 0 and stage_frames != 0)
            ok = ok and good
            results.append({"classroom": c.name, "video_frames": vframes, "courseware_frames": cframes,
                            "audio_frames": aframes, "sizes": [f"{w}x{h}" for w, h in sizes],
                            "frames_seen_by_teacher": seen_by_teacher, "stage_frames": stage_frames,
                            "ok": good})
        decoders = int(counters.get("decoders_created", -1))
        encoders = int(counters.get("encoders_created", -1))
        ok = ok and decoders == 0 and encoders == 0
        summary = {
            "ok": ok,
            "classrooms": len(results),
            "seconds": args.seconds,
            "teacher_camera_layers": sorted(p["layer"] for p in teacher.producers if p.get("source") == "camera"),
            "server_decoders_created": decoders,
            "server_encoders_created": encoders,
            "rtp_packets_in": counters.get("rtp_packets_in"),
            "rtp_packets_out": counters.get("rtp_packets_out"),
            "results": results,
        }
        print(json.dumps(summary), flush=True)
        if args.check:
            return 0 if ok else 1
        return 0
    finally:
        for c in reversed(clients):
            try:
                await c.close()
            except Exception:
                pass
        server.stop()
