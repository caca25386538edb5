"""Chromium inside a test network namespace (see ``tests.netns``).

Playwright's ``executable_path`` is a generated wrapper script
``exec ip netns exec <ns> /usr/bin/chromium "$@"``: Playwright controls the
browser over inherited pipes (``--remote-debugging-pipe``), which ``exec``
keeps, so control needs no network and the browser sees only the veth link.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.netns import VethLink

CHROMIUM = os.environ.get("SYNCLASS_CHROMIUM", "/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "artifacts"

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


def write_chromium_wrapper(link: VethLink, path: Path, pidfile: Path) -> Path:
    """An executable script that starts Chromium in ``link``'s namespace.

    It writes its pid to ``pidfile`` first; ``exec`` keeps the pid, so that is
    the browser's own pid.
    """
    path.write_text(
        "#!/bin/sh\n"
        f"echo $$ > {pidfile}\n"
        f'exec ip netns exec {link.ns} {CHROMIUM} "$@"\n'
    )
    path.chmod(0o755)
    return path


def chromium_args(*secure_origins: str) -> list[str]:
    """Launch flags; ``secure_origins`` are plain-http origins treated as secure."""
    args = list(CHROMIUM_ARGS)
    if secure_origins:
        args.append("--unsafely-treat-insecure-origin-as-secure=" + ",".join(secure_origins))
    return args


def stop_pid(pid: int) -> None:
    """SIGTERM, then SIGKILL after 5 s, one process we started."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


