"""Smoke test of ``synclass bench record``: it runs end to end and reports its keys.

Behaviour only (no timing asserts): one 1 Mbps track, 1.5-second windows.
(Kept with the recorder's tests; it belongs with tests/bench/ as well.)
"""

from __future__ import annotations

import json

import aioice.ice
import pytest

from synclass.bench import record

KEYS = (
    "tracks", "seconds", "video_kbps_per_track", "sfu_cpu_pct_baseline", "sfu_cpu_pct_recording",
    "record_cpu_pct_per_track", "record_cpu_pct_per_mbps", "record_loop_cpu_pct_per_mbps", "meets_target",
    "recorded_frames", "files", "file_frames_min", "file_sizes",
)


@pytest.mark.timeout(120)
def test_record_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    host_addresses = aioice.ice.get_host_addresses
    assert record.main(["--tracks", "1", "--seconds", "1.5", "--warmup", "1"]) == 0
    assert aioice.ice.get_host_addresses is host_addresses  # process-wide ICE setting restored

    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    result = json.loads(lines[0])
    missing = [key for key in KEYS if key not in result]
    assert not missing, missing
    assert result["tracks"] == 1 and result["files"] == 1 and result["files_unreadable"] == 0
    assert result["file_sizes"] == ["640x480"]
    assert result["recorded_frames"] > 0 and result["file_frames_min"] == result["recorded_frames"]
    assert result["sfu_decoders_created"] == 0 and result["sfu_encoders_created"] == 0
