"""The library API: search, detail, files with ranges and access tokens,
traversal, export jobs (a stand-in export subprocess), exact messages."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server import manifest as mf
from server import tokens
from server.app import create_app
from server.errors import Forbidden, Invalid, Unauthorized
from server.keys import EXPORTS, RECORDINGS
from server.library import parse_query
from server.store import RecordingQuery

from .conftest import ADMIN, TOKEN_SECRET, get, settings_for

DATA = bytes(range(256)) * 64  # 16 KiB of known bytes


def make_recording(root: Path, session_id: str, *, started_at: float = 1_763_860_000.0,
                   title: str = "Fractions", teacher: str = "Ms Li", subject: str = "Maths",
                   school_id: str = "s1", room_id: str = "r1", status: str = "complete",
                   files: tuple[str, ...] = ("01-teacher-camera.webm", "02-teacher-mic.webm")) -> Path:
    directory = root / session_id
    directory.mkdir(parents=True)
    tracks = []
    for name in files:
        (directory / name).write_bytes(DATA)
        kind = "audio" if "mic" in name else "video"
        tracks.append({**mf.new_track(file=name, kind=kind, source=name.split("-")[-1].split(".")[0],
                                      role="teacher", participant_name=teacher, room_id=room_id,
                                      room_name="Room 101"),
                       "status": "complete", "duration_s": 60.0, "bytes": len(DATA)})
    meta = {"session_id": session_id, "title": title, "subject": subject, "teacher_name": teacher,
            "school_id": school_id, "school_name": "Urban No. 1", "lecture_room_id": room_id,
            "room_name": "Room 101"}
    mf.write(directory, mf.build(meta, began_at=started_at, ended_at=None if status == "recording" else started_at + 60,
                                 status=status, tracks=tracks, first_frames=[started_at + 0.5] * len(tracks)))
    return directory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "data" / "recordings"


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, root: Path) -> TestClient:
    make_recording(root, "lessonA", started_at=1_763_860_000.0)
    make_recording(root, "lessonB", started_at=1_763_950_000.0, title="Poems", subject="Chinese",
                   teacher="Mr Wang", school_id="s2", room_id="r2", files=("01-teacher-camera.mkv",))
    client = await aiohttp_client(create_app(settings_for(tmp_path)))
    await client.app[RECORDINGS].wait_recovered()  # indexes what is on disk
    return client


# --- the search query --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "parsed"),
    [
        ({}, RecordingQuery()),
        ({"school_id": "s1", "room_id": "r1", "teacher": " Li ", "subject": "", "q": "frac"},
         RecordingQuery(school_id="s1", lecture_room_id="r1", teacher="Li", text="frac")),
        ({"from": "2025-03-01", "to": "2025-03-01"},
         RecordingQuery(since="2025-03-01T00:00:00.000Z", until="2025-03-02T00:00:00.000Z")),
        ({"from": "2025-03-01T08:00:00+08:00"}, RecordingQuery(since="2025-03-01T00:00:00.000Z")),
        ({"status": "recovered", "limit": "5"}, RecordingQuery(status="recovered", limit=5)),
    ],
)
def test_search_queries(query: dict[str, str], parsed: RecordingQuery) -> None:
    assert parse_query(query) == parsed


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"teachr": "Li"}, "teachr", "query 'teachr' is not allowed"),
        ({"from": "yesterday"}, "from", "query 'from' must be a date like 2025-03-01 or an ISO-8601 time with a timezone"),
        ({"to": "2025-03-01T08:00:00"}, "to", "query 'to' must be a date like 2025-03-01 or an ISO-8601 time with a timezone"),
        ({"status": "live"}, "status", "query 'status' must be one of recording, complete, recovered"),
        ({"limit": "0"}, "limit", "query 'limit' must be an integer from 1 to 1000"),
        ({"q": "x" * 201}, "q", "query 'q' must be at most 200 characters"),
    ],
)
def test_bad_search_queries_are_refused_exactly(query: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(Invalid) as e:
        parse_query(query)
    assert (e.value.field, e.value.message) == (field, message)


async def ids(client: TestClient, query: str) -> list[str]:
    return [r["id"] for r in (await get(client, f"/api/recordings{query}"))["recordings"]]


async def test_the_library_lists_newest_first_and_searches(client: TestClient) -> None:
    assert await ids(client, "") == ["lessonB", "lessonA"]
    assert await ids(client, "?school_id=s1") == ["lessonA"]
    assert await ids(client, "?room_id=r2") == ["lessonB"]
    assert await ids(client, "?teacher=wang") == ["lessonB"]
    assert await ids(client, "?subject=math") == ["lessonA"]
    assert await ids(client, "?q=poem") == ["lessonB"]
    assert await ids(client, "?q=lessonA") == ["lessonA"]
    assert await ids(client, "?q=%25") == []  # LIKE wildcards are plain text
    assert await ids(client, "?from=2025-11-23&to=2025-11-23") == ["lessonA"]
    assert await ids(client, "?from=2025-11-24") == ["lessonB"]
    assert await ids(client, "?limit=1") == ["lessonB"]
    first = (await get(client, "/api/recordings?school_id=s1"))["recordings"][0]
    assert first == {
        "id": "lessonA", "session_id": "lessonA", "lecture_room_id": "r1", "room_name": "Room 101",
        "school_id": "s1", "school_name": "Urban No. 1", "title": "Fractions", "subject": "Maths",
        "teacher_name": "Ms Li", "started_at": "2025-11-23T01:06:40.000Z",
        "ended_at": "2025-11-23T01:07:40.000Z", "status": "complete", "duration_s": 60.0,
        "bytes": 2 * len(DATA), "tracks": 2,
    }
    bad = await client.get("/api/recordings?from=soon", headers=ADMIN)
    assert bad.status == 422
    assert (await bad.json())["error"]["field"] == "from"


async def test_the_detail_hands_out_file_urls_that_play_without_a_header(client: TestClient) -> None:
    detail = await get(client, "/api/recordings/lessonA")
    assert detail["recording"]["id"] == "lessonA"
    assert [t["file"] for t in detail["manifest"]["tracks"]] == ["01-teacher-camera.webm", "02-teacher-mic.webm"]
    assert detail["export"] is None and detail["export_job"] is None
    url = detail["urls"]["01-teacher-camera.webm"]
    assert url.startswith("/api/recordings/lessonA/files/01-teacher-camera.webm?access=")
    response = await client.get(url)  # no Authorization header: the token opens it
    assert response.status == 200
    assert response.headers["Content-Type"] == "video/webm"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert await response.read() == DATA


async def test_a_range_request_gets_206_and_exactly_those_bytes(client: TestClient) -> None:
    response = await client.get("/api/recordings/lessonA/files/01-teacher-camera.webm",
                                headers={**ADMIN, "Range": "bytes=1000-1999"})
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 1000-1999/{len(DATA)}"
    assert await response.read() == DATA[1000:2000]
    tail = await client.get("/api/recordings/lessonA/files/01-teacher-camera.webm",
                            headers={**ADMIN, "Range": "bytes=-10"})
    assert (tail.status, await tail.read()) == (206, DATA[-10:])
    mkv = await client.get("/api/recordings/lessonB/files/01-teacher-camera.mkv", headers=ADMIN)
    assert (mkv.status, mkv.headers["Content-Type"]) == (200, "video/x-matroska")


@pytest.mark.parametrize(
    "name",
    ["manifest.json", ".manifest.json.tmp", "..%2F..%2Ftoken_secret", "..%2FlessonB%2F01-teacher-camera.mkv",
     "%2E%2E", "03-teacher-courseware.webm"],
)
async def test_only_the_lessons_own_files_are_served(client: TestClient, name: str) -> None:
    response = await client.get(f"/api/recordings/lessonA/files/{name}", headers=ADMIN)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_an_unknown_recording_is_404(client: TestClient) -> None:
    response = await client.get("/api/recordings/nope/files/01-teacher-camera.webm", headers=ADMIN)
    assert response.status == 404
    assert (await response.json())["error"]["message"] == "recording nope not found"


def forged(recording_id: str, **claims: Any) -> str:
    import jwt

    payload = {"sub": recording_id, "aud": tokens.ACCESS_AUDIENCE, "iss": "synclass",
               "iat": int(time.time()), "exp": int(time.time()) + 60, **claims}
    return jwt.encode(payload, claims.pop("secret", "another-secret-0123456789abcdef0123"), algorithm="HS256")


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 401, "missing Authorization header"),
        ("?access=nonsense", 401, "access token is malformed"),
        ("?access=" + forged("lessonA"), 401, "access token signature is invalid"),
        ("?access=" + tokens.mint_access(TOKEN_SECRET, "lessonA", now=time.time() - 3 * tokens.ACCESS_TTL_S)[0],
         401, "access token expired"),
        ("?access=" + tokens.mint_access(TOKEN_SECRET, "lessonB")[0], 403,
         "access token is for recording lessonB, not lessonA"),
        ("?access=" + tokens.mint(TOKEN_SECRET, sub="*", role="admin", ttl_s=600)[0], 401,
         "access token is malformed"),  # a join token opens no files
    ],
)
async def test_files_without_a_valid_token_are_refused_exactly(
    client: TestClient, query: str, status: int, message: str
) -> None:
    response = await client.get(f"/api/recordings/lessonA/files/01-teacher-camera.webm{query}")
    assert response.status == status
    assert (await response.json())["error"] == {
        "code": "unauthorized" if status == 401 else "forbidden", "message": message
    }


async def test_an_access_token_opens_only_files(client: TestClient) -> None:
    token = tokens.mint_access(TOKEN_SECRET, "lessonA")[0]
    response = await client.get(f"/api/recordings/lessonA?access={token}")
    assert response.status == 401
    assert (await response.json())["error"]["message"] == "missing Authorization header"
    with pytest.raises(Unauthorized, match="^token is malformed$"):
        tokens.verify(TOKEN_SECRET, token)  # nor is it a join token


@pytest.mark.parametrize(
    ("secret", "recording", "now_offset", "error", "message"),
    [
        (TOKEN_SECRET, "a", 0, None, None),
        (TOKEN_SECRET, "a", tokens.ACCESS_TTL_S - 1, None, None),
        (TOKEN_SECRET, "a", tokens.ACCESS_TTL_S, Unauthorized, "access token expired"),
        ("x" * 40, "a", 0, Unauthorized, "access token signature is invalid"),
        (TOKEN_SECRET, "b", 0, Forbidden, "access token is for recording a, not b"),
    ],
)
def test_access_tokens(secret: str, recording: str, now_offset: int, error: type[Exception] | None,
                       message: str | None) -> None:
    token, expires = tokens.mint_access(TOKEN_SECRET, "a", now=1000.0)
    assert expires == 1000 + tokens.ACCESS_TTL_S
    if error is None:
        tokens.verify_access(secret, token, recording, now=1000.0 + now_offset)
    else:
        with pytest.raises(error, match=f"^{message}$"):
            tokens.verify_access(secret, token, recording, now=1000.0 + now_offset)


# --- export jobs -----------------------------------------------------------------------------

STAND_IN = """
import json, sys, time
out = sys.argv[2]
if "fail" in sys.argv[1]:
    print("synclass export: no video tracks in lesson " + sys.argv[1], file=sys.stderr)
    sys.exit(2)
for i in range(1, 5):
    print(json.dumps({"progress": i / 4}), flush=True)
    time.sleep(0.05)
open(out, "wb").write(b"MP4" * 1000)
print(json.dumps({"done": True, "out": out, "duration_s": 60.0}), flush=True)
"""


def stand_in(lesson_dir: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", STAND_IN, str(lesson_dir), str(out)]


async def wait_job(client: TestClient, job_id: str) -> dict[str, Any]:
    for _ in range(200):
        job: dict[str, Any] = await get(client, f"/api/exports/{job_id}")
        if job["status"] != "running":
            return job
        await asyncio.sleep(0.05)
    raise AssertionError("export did not finish")


async def test_an_export_job_runs_reports_progress_and_leaves_its_mp4(client: TestClient, root: Path) -> None:
    client.app[EXPORTS].command = stand_in
    started = await client.post("/api/recordings/lessonA/export", headers=ADMIN)
    assert started.status == 202
    job = await started.json()
    assert (job["recording_id"], job["status"], job["error"]) == ("lessonA", "running", None)
    again = await client.post("/api/recordings/lessonA/export", headers=ADMIN)
    assert again.status == 409
    assert (await again.json())["error"]["message"] == (
        f"an export of recording lessonA is already running (job {job['id']})"
    )
    early = await client.get(f"/api/exports/{job['id']}/file", headers=ADMIN)
    assert early.status == 409
    busy = await client.delete("/api/recordings/lessonA", headers=ADMIN)
    assert (await busy.json())["error"]["message"] == f"recording lessonA is being exported (job {job['id']})"
    done = await wait_job(client, job["id"])
    assert (done["status"], done["progress"], done["duration_s"]) == ("done", 1.0, 60.0)
    assert done["file_url"] == f"/api/exports/{job['id']}/file"
    assert (root / "lessonA" / "export.mp4").read_bytes() == b"MP4" * 1000
    assert [p.name for p in (root / "lessonA").glob(".export-*")] == []
    response = await client.get(done["file_url"], headers={**ADMIN, "Range": "bytes=0-2"})
    assert (response.status, await response.read()) == (206, b"MP4")
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.headers["Content-Disposition"] == 'attachment; filename="lesson-lessonA.mp4"'
    detail = await get(client, "/api/recordings/lessonA")
    assert detail["export"]["bytes"] == 3000
    with_token = await client.get(detail["export"]["url"])
    assert with_token.status == 200
    other = tokens.mint_access(TOKEN_SECRET, "lessonB")[0]
    refused = await client.get(f"{done['file_url']}?access={other}")
    assert refused.status == 403


async def test_a_failed_export_says_why(client: TestClient, root: Path) -> None:
    (root / "failing").mkdir()
    client.app[EXPORTS].command = lambda d, o: stand_in(root / "failing", o)
    job = await (await client.post("/api/recordings/lessonB/export", headers=ADMIN)).json()
    done = await wait_job(client, job["id"])
    assert done["status"] == "failed"
    assert done["error"] == f"no video tracks in lesson {root / 'failing'}"
    response = await client.get(f"/api/exports/{job['id']}/file", headers=ADMIN)
    assert response.status == 409
    assert (await response.json())["error"]["message"] == f"export {job['id']} failed: {done['error']}"
    unknown = await client.get("/api/exports/nope", headers=ADMIN)
    assert (unknown.status, (await unknown.json())["error"]["message"]) == (404, "export nope not found")
