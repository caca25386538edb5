"""Export jobs: one MP4 of a recorded lesson, made by ``synclass export`` in a
subprocess (it decodes and encodes: never in the server's process, and the
server never imports av).

A job reads the subprocess's JSON progress lines (``{"progress": 0.42}``,
then ``{"done": true, ...}``), writes to a hidden file in the lesson's
directory and, on success, renames it to ``export.mp4`` there, where it stays
(the library says it exists; retention deletes it with the lesson). Jobs live
in memory: a restart forgets them, not their finished files. One job at a
time per lesson. The subprocess runs at a lower priority (nice 10) so the
lessons being served keep the CPU they need.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import Conflict, NotFound
from .ids import new_id
from .manifest import EXPORT_NAME

log = logging.getLogger(__name__)

JobStatus = Literal["running", "done", "failed"]
NICE = 10
KEEP_FINISHED = 100  # finished jobs remembered (the newest)


def export_command(lesson_dir: Path, out: Path) -> list[str]:
    """The subprocess of one export (docs: synclass export)."""
    return [sys.executable, "-m", "synclass", "export", str(lesson_dir), "--out", str(out),
            "--progress", "json"]


@dataclass
class ExportJob:
    id: str
    recording_id: str
    lesson_dir: Path
    status: JobStatus = "running"
    progress: float = 0.0
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    duration_s: float | None = None
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None

    @property
    def out(self) -> Path:
        return self.lesson_dir / EXPORT_NAME

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "recording_id": self.recording_id,
            "status": self.status,
            "progress": round(self.progress, 3),
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "file_url": f"/api/exports/{self.id}/file" if self.status == "done" else None,
        }


def read_progress(line: bytes) -> dict[str, Any] | None:
    """One stdout line of ``synclass export --progress json``; None if it is not one."""
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def error_of(stderr: bytes, returncode: int | None) -> str:
    """The export's own message (``synclass export: <message>``), or the last line."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("synclass export: "):
            return line[len("synclass export: "):]
    if lines:
        return lines[-1][:500]
    return f"export exited with code {returncode}"


class Exports:
    def __init__(self, command: Callable[[Path, Path], list[str]] = export_command) -> None:
        self.command = command
        self.jobs: dict[str, ExportJob] = {}

    def get(self, job_id: str) -> ExportJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"export {job_id} not found")
        return job

    def running(self, recording_id: str) -> ExportJob | None:
        for job in self.jobs.values():
            if job.recording_id == recording_id and job.status == "running":
                return job
        return None

    def start(self, recording_id: str, lesson_dir: Path) -> ExportJob:
        current = self.running(recording_id)
        if current is not None:
            raise Conflict(f"an export of recording {recording_id} is already running (job {current.id})")
        job = ExportJob(id=new_id(), recording_id=recording_id, lesson_dir=lesson_dir)
        self.jobs[job.id] = job
        self._forget_old()
        job.task = asyncio.get_running_loop().create_task(self._run(job), name=f"export-{job.id}")
        log.info("- export %s of recording %s started", job.id, recording_id)
        return job

    def _forget_old(self) -> None:
        finished = sorted(
            (j for j in self.jobs.values() if j.status != "running"), key=lambda j: j.started_at
        )
        for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            self.jobs.pop(job.id, None)

    async def _run(self, job: ExportJob) -> None:
        tmp = job.lesson_dir / f".export-{job.id}.mp4"
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command(job.lesson_dir, tmp),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL,
                preexec_fn=lambda: os.nice(NICE),
            )
            job.process = process
            assert process.stdout is not None and process.stderr is not None
            stderr_task = asyncio.ensure_future(process.stderr.read())
            done: dict[str, Any] | None = None
            async for line in process.stdout:
                data = read_progress(line)
                if data is None:
                    continue
                if isinstance(data.get("progress"), (int, float)):
                    job.progress = min(1.0, max(0.0, float(data["progress"])))
                if data.get("done") is True:
                    done = data
            stderr = await stderr_task
            code = await process.wait()
            if code == 0 and done is not None and tmp.is_file():
                os.replace(tmp, job.out)
                job.status, job.progress = "done", 1.0
                duration = done.get("duration_s")
                job.duration_s = float(duration) if isinstance(duration, (int, float)) else None
                log.info("- export %s of recording %s done: %s", job.id, job.recording_id, job.out)
            else:
                job.status = "failed"
                job.error = error_of(stderr, code) if code != 0 else "export ended without a file"
                log.warning("x export %s of recording %s failed: %s", job.id, job.recording_id, job.error)
        except asyncio.CancelledError:
            job.status, job.error = "failed", "the server stopped"
            raise
        except Exception as e:
            job.status, job.error = "failed", f"export could not run: {e}"
            log.exception("x export %s of recording %s could not run", job.id, job.recording_id)
        finally:
            job.finished_at = time.time()
            if job.process is not None and job.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    job.process.kill()
                with contextlib.suppress(Exception):
                    await job.process.wait()
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    async def close(self) -> None:
        """Shutdown: stop running exports (their partial files are removed)."""
        for job in list(self.jobs.values()):
            if job.task is not None and not job.task.done():
                job.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job.task
