"""Run a synclass server as a child process and talk to its admin API.

The demo, the end-to-end tests and the benchmarks use a real server in its
own process, so its media-plane counters (decoders/encoders created) are the
server's alone.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import aiohttp


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``synclass serve`` in a child process, stopped by its own pid."""

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: Optional[int] = None,
        ice_host_addresses: tuple[str, ...] = ("127.0.0.1",),
        env: Optional[dict[str, str]] = None,
        log_path: Optional[Path] = None,
        cpu: Optional[int] = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.admin_key = secrets.token_urlsafe(24)
        self.url = f"http://{host}:{self.port}"
        self.ice_host_addresses = ice_host_addresses
        self.extra_env = env or {}
        self.log_path = log_path or (self.data_dir / "server.log")
        self.cpu = cpu
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            {
                "SYNCLASS_ADMIN_KEY": self.admin_key,
                "SYNCLASS_ICE_HOST_ADDRESSES": ",".join(self.ice_host_addresses),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        cmd = [sys.executable, "-m", "synclass", "serve", "--host", self.host, "--port", str(self.port),
               "--data-dir", str(self.data_dir)]
        log = open(self.log_path, "ab")
        preexec = None
        if self.cpu is not None:
            cpu = self.cpu
            preexec = lambda: os.sched_setaffinity(0, {cpu})  # noqa: E731
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec)
        log.close()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
                try:
                    async with http.get(self.url + "/api/health") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"server not ready within {timeout} s; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode or 0)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class AdminApi:
    """The REST calls an admin makes, with the admin key."""

    def __init__(self, base_url: str, admin_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {admin_key}"}

    async def call(self, method: str, path: str, json: Any = None, expect: int | tuple[int, ...] = (200, 201)) -> Any:
        expected = (expect,) if isinstance(expect, int) else expect
        async with aiohttp.ClientSession() as http:
            async with http.request(method, self.base_url + path, json=json, headers=self.headers) as resp:
                body = await resp.json(content_type=None)
                if resp.status not in expected:
                    raise RuntimeError(f"{method} {path} -> {resp.status}: {body}")
                return body

    async def lesson_setup(self, classrooms: int, school_name: str = "Demo county") -> dict[str, Any]:
        """A city school with one lecture room and ``classrooms`` paired rural classrooms."""
        city = await self.call("POST", "/api/schools", {"name": f"{school_name} city school", "region": "city"})
        lecture = await self.call("POST", f"/api/schools/{city['id']}/rooms", {"name": "Lecture room 1", "kind": "lecture"})
        rooms = []
        for i in range(classrooms):
            rural = await self.call("POST", "/api/schools", {"name": f"Rural school {i + 1}", "region": "rural"})
            room = await self.call("POST", f"/api/schools/{rural['id']}/rooms", {"name": f"Classroom {i + 1}", "kind": "classroom"})
            await self.call("POST", "/api/pairings", {"lecture_room_id": lecture["id"], "classroom_room_id": room["id"]})
            rooms.append(room)
        return {"lecture": lecture, "classrooms": rooms}

    async def token(self, room_id: str, role: str, name: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"room_id": room_id, "role": role}
        if name:
            body["name"] = name
        return dict(await self.call("POST", "/api/tokens", body))

    async def stats(self) -> dict[str, Any]:
        return dict(await self.call("GET", "/api/stats", expect=200))
