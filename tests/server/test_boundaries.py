from __future__ import annotations

import subprocess
import sys


def test_the_control_plane_never_imports_aiortc_or_av() -> None:
    code = (
        "import sys, server.app, server.signaling, server.live, server.api; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiortc', 'av', 'aioice')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
