"""``synclass serve`` as a newcomer runs it: flags, TLS, bad settings."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp

from synclass.serverproc import ServerProcess, free_port


async def _get(url: str, ssl_context: ssl.SSLContext | bool | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, ssl=ssl_context) as resp:
            return resp.status, await resp.json()


def test_serve_with_a_self_signed_certificate_answers_https_for_localhost(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "synclass", "serve", "--port", str(port), "--data-dir", str(tmp_path),
         "--tls-self-signed", "--ice-address", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        cert = tmp_path / "tls" / "self-signed.crt"

        async def wait() -> tuple[int, dict]:
            for _ in range(200):
                if cert.exists():
                    ctx = ssl.create_default_context(cafile=str(cert))  # verifies name "localhost" too
                    try:
                        return await _get(f"https://localhost:{port}/api/health", ctx)
                    except aiohttp.ClientConnectorError:
                        pass
                await asyncio.sleep(0.1)
            raise AssertionError("server did not answer https")

        status, body = asyncio.run(wait())
        assert status == 200
        assert body == {"status": "ok", "media": True}
        # plain http on the TLS port is refused
        try:
            asyncio.run(_get(f"http://127.0.0.1:{port}/api/health"))
        except aiohttp.ClientError:
            pass
        else:
            raise AssertionError("plain http was served on the TLS port")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out.decode(errors="replace")
    assert b"https://127.0.0.1:" in out


def test_serve_refuses_a_bad_setting_with_a_clear_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "synclass", "serve", "--data-dir", str(tmp_path)],
        env={"SYNCLASS_PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("synclass: ")
    assert "port" in result.stderr


def test_demo_check_passes_with_one_classroom(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "synclass", "demo", "--classrooms", "1", "--seconds", "4", "--check",
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert summary["server_decoders_created"] == 0 and summary["server_encoders_created"] == 0
    assert summary["teacher_camera_layers"] == [0, 1, 2]  # the camera as three layers of one source
    assert summary["results"][0]["sizes"] == ["640x480", "1280x720"]  # camera (top layer) and courseware
    assert summary["results"][0]["frames_seen_by_teacher"] > 0  # the classroom publishes back
    assert (tmp_path / "synclass.db").exists()  # --data-dir is where the demo server keeps its data


def test_serve_process_shuts_down_cleanly_on_sigterm(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    server.start()
    asyncio.run(server.wait_ready())
    assert server.stop() == 0
    assert "Traceback" not in server.log_text()
