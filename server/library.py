"""The recordings library and export jobs over HTTP (docs/protocol.md,
"Recordings"). Admin-only like the rest of /api/, except that a lesson's
files (and its export) also open with a short-lived ``?access=`` token the
detail hands out, because a <video> element cannot send a header.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from . import manifest as mf
from . import tokens
from .errors import Conflict, Invalid, NotFound
from .keys import EXPORTS, RECORDINGS, SETTINGS, STORE
from .models import RECORDING_STATUSES, iso_utc, iso_utc_ms
from .store import RecordingQuery
from .validation import check_choice, check_text

QUERY_FIELDS = ("school_id", "room_id", "teacher", "subject", "from", "to", "q", "status", "limit")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 200
CONTENT_TYPES = {
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".mp4": "video/mp4",
}
# paths whose GET may carry ?access=<token> instead of the Authorization header
FILE_PATH = re.compile(r"^/api/recordings/(?P<id>[^/]+)/files/[^/]+$")
EXPORT_FILE_PATH = re.compile(r"^/api/exports/(?P<job>[^/]+)/file$")


# --- the search query (pure) ------------------------------------------------------


def _moment(name: str, value: str, *, end_of_day: bool) -> str:
    """A query time as the index stores it (ISO-8601 UTC, ms). A plain date
    is that UTC day: its start, or for ``to`` the start of the next."""
    message = f"query '{name}' must be a date like 2025-03-01 or an ISO-8601 time with a timezone"
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            moment = datetime.fromisoformat(value).replace(tzinfo=UTC)
            if end_of_day:
                moment += timedelta(days=1)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise ValueError
    except ValueError:
        raise Invalid(name, message) from None
    return iso_utc_ms(moment)


def parse_query(query: Mapping[str, str]) -> RecordingQuery:
    """``GET /api/recordings`` parameters; ``Invalid`` with an exact message."""
    for name in query:
        if name not in QUERY_FIELDS:
            raise Invalid(name, f"query '{name}' is not allowed")

    def text(name: str) -> str | None:
        value = query.get(name)
        if value is None or not value.strip():
            return None
        return check_text(name, value, max_chars=200, label="query")

    limit = DEFAULT_LIMIT
    if query.get("limit"):
        raw = query["limit"]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            raise Invalid("limit", f"query 'limit' must be an integer from 1 to {MAX_LIMIT}")
        limit = int(raw)
    status = None
    if query.get("status"):
        status = check_choice("status", query["status"], RECORDING_STATUSES, label="query")
    since = text("from")
    until = text("to")
    return RecordingQuery(
        school_id=text("school_id"),
        lecture_room_id=text("room_id"),
        teacher=text("teacher"),
        subject=text("subject"),
        since=None if since is None else _moment("from", since, end_of_day=False),
        until=None if until is None else _moment("to", until, end_of_day=True),
        text=text("q"),
        status=status,
        limit=limit,
    )


# --- access to files -----------------------------------------------------------------


def authenticate_access(request: web.Request) -> bool:
    """True if this request is for a lesson's file (or its export) and carries
    a valid ``access`` token for that lesson; raises for a bad token; False
    when it has none (the Authorization header is then required)."""
    if request.method not in ("GET", "HEAD") or "access" not in request.query:
        return False
    found = FILE_PATH.match(request.path)
    if found is not None:
        recording_id = found["id"]
    else:
        found = EXPORT_FILE_PATH.match(request.path)
        if found is None:
            return False
        recording_id = request.app[EXPORTS].get(found["job"]).recording_id
    secret = request.app[SETTINGS].token_secret or ""
    tokens.verify_access(secret, request.query["access"], recording_id)
    return True


def _access(request: web.Request, recording_id: str) -> tuple[str, int]:
    return tokens.mint_access(request.app[SETTINGS].token_secret or "", recording_id)


def _file_url(recording_id: str, name: str, token: str) -> str:
    return f"/api/recordings/{quote(recording_id)}/files/{quote(name)}?access={token}"


def _serve(path: Path, download_name: str | None = None) -> web.FileResponse:
    """aiohttp's own file serving: ranges (206), If-Range, HEAD, sendfile."""
    headers = {"Content-Type": CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")}
    if download_name is not None:
        headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return web.FileResponse(path, headers=headers)


# --- handlers --------------------------------------------------------------------------


async def list_recordings(request: web.Request) -> web.Response:
    query = parse_query(request.query)
    entries = await request.app[STORE].list_recordings(query)
    return web.json_response({"recordings": [e.to_json() for e in entries]})


async def _manifest_of(directory: Path) -> dict[str, Any] | None:
    try:
        return await asyncio.to_thread(mf.read, directory)
    except (FileNotFoundError, ValueError):
        return None


async def get_recording(request: web.Request) -> web.Response:
    recording_id = request.match_info["id"]
    app = request.app
    entry = await app[STORE].get_recording(recording_id)
    directory = app[RECORDINGS].directory_of(recording_id)
    manifest = await _manifest_of(directory)
    token, expires = _access(request, recording_id)
    urls = {
        str(t["file"]): _file_url(recording_id, str(t["file"]), token)
        for t in (manifest or {}).get("tracks", [])
    }
    export_path = directory / mf.EXPORT_NAME
    export = None
    if export_path.is_file():
        export = {
            "file": mf.EXPORT_NAME,
            "bytes": export_path.stat().st_size,
            "url": _file_url(recording_id, mf.EXPORT_NAME, token),
        }
    job = app[EXPORTS].running(recording_id)
    return web.json_response(
        {
            "recording": entry.to_json(),
            "in_progress": app[RECORDINGS].in_progress(recording_id),
            "manifest": manifest,
            "access": {"token": token, "expires_at": iso_utc(datetime.fromtimestamp(expires, UTC))},
            "urls": urls,
            "export": export,
            "export_job": job.to_json() if job is not None else None,
        }
    )


async def get_file(request: web.Request) -> web.StreamResponse:
    recording_id = request.match_info["id"]
    name = request.match_info["name"]
    await request.app[STORE].get_recording(recording_id)
    directory = request.app[RECORDINGS].directory_of(recording_id)
    manifest = await _manifest_of(directory)
    names = {str(t["file"]) for t in (manifest or {}).get("tracks", [])} | {mf.EXPORT_NAME}
    path = directory / name
    # only the lesson's own files: a name from its manifest, never a path
    if name not in names or "/" in name or name.startswith(".") or not path.is_file():
        raise NotFound(f"file {name} not found in recording {recording_id}")
    return _serve(path)


async def delete_recording(request: web.Request) -> web.Response:
    recording_id = request.match_info["id"]
    app = request.app
    entry = await app[STORE].get_recording(recording_id)
    if app[RECORDINGS].in_progress(recording_id) or entry.status == "recording":
        raise Conflict(f"recording {recording_id} is in progress; delete it after the lesson ends")
    job = app[EXPORTS].running(recording_id)
    if job is not None:
        raise Conflict(f"recording {recording_id} is being exported (job {job.id})")
    await app[RECORDINGS].delete(recording_id)
    return web.Response(status=204)


async def start_export(request: web.Request) -> web.Response:
    recording_id = request.match_info["id"]
    app = request.app
    entry = await app[STORE].get_recording(recording_id)
    if app[RECORDINGS].in_progress(recording_id) or entry.status == "recording":
        raise Conflict(f"recording {recording_id} is in progress; export it after the lesson ends")
    job = app[EXPORTS].start(recording_id, app[RECORDINGS].directory_of(recording_id))
    return web.json_response(job.to_json(), status=202)


async def get_export(request: web.Request) -> web.Response:
    return web.json_response(request.app[EXPORTS].get(request.match_info["job"]).to_json())


async def get_export_file(request: web.Request) -> web.StreamResponse:
    job = request.app[EXPORTS].get(request.match_info["job"])
    if job.status == "running":
        raise Conflict(f"export {job.id} is not finished ({round(job.progress * 100)} %)")
    if job.status == "failed":
        raise Conflict(f"export {job.id} failed: {job.error}")
    if not job.out.is_file():
        raise NotFound(f"the file of export {job.id} is gone (the recording was deleted)")
    return _serve(job.out, download_name=f"lesson-{job.recording_id}.mp4")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/recordings", list_recordings)
    r.add_get("/api/recordings/{id}", get_recording)
    r.add_delete("/api/recordings/{id}", delete_recording)
    r.add_get("/api/recordings/{id}/files/{name}", get_file)
    r.add_post("/api/recordings/{id}/export", start_export)
    r.add_get("/api/exports/{job}", get_export)
    r.add_get("/api/exports/{job}/file", get_export_file)
