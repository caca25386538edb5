"""Smoke test of ``synclass bench fanout``: it runs end to end and reports its keys.

Behaviour only (no timing asserts): 3 light subscribers on the SFU, one
MediaRelay subscriber, 3-second windows.
"""

from __future__ import annotations

import json

import aioice.ice
import pytest

from synclass.bench import fanout

KEYS = (
    "subscribers", "seconds", "publish_kbps", "sfu_cpu_pct", "us_per_packet", "out_pps", "frame_gaps",
    "audio_gaps", "decoded_frames", "decoded_size", "subscribers_per_core", "latency_ms_p50", "latency_ms_p95",
    "direct_latency_ms_p50", "added_latency_ms_p50", "relay_subscribers", "relay_cpu_pct",
    "relay_subscribers_per_core", "ratio_vs_relay",
)


@pytest.mark.timeout(120)
def test_fanout_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    host_addresses = aioice.ice.get_host_addresses
    assert fanout.main(["--subscribers", "3", "--seconds", "3", "--relay-subscribers", "1"]) == 0
    assert aioice.ice.get_host_addresses is host_addresses  # process-wide ICE setting restored

    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    result = json.loads(lines[0])
    missing = [key for key in KEYS if key not in result]
    assert not missing, missing
    assert result["subscribers"] == 3
    assert result["decoded_size"] == "640x480"
    assert result["decoded_frames"] > 0
    assert isinstance(result["frame_gaps"], int) and result["frame_gaps"] >= 0
    assert isinstance(result["audio_gaps"], int) and result["audio_gaps"] >= 0
    assert result["relay_subscribers"] == 1
    assert result["sfu_decoders_created"] == 0 and result["sfu_encoders_created"] == 0
