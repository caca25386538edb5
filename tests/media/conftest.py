"""Shared fixtures for the media plane tests.

``MediaPlane(...)`` changes aioice's process-wide settings (host addresses,
consent timing); every test here gets them back as they were, so tests in
other packages see aioice's defaults.
"""

from __future__ import annotations

from collections.abc import Iterator

import aioice.ice
import pytest


@pytest.fixture(autouse=True)
def restore_aioice_globals() -> Iterator[None]:
    saved = (aioice.ice.get_host_addresses, aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES)
    yield
    aioice.ice.get_host_addresses, aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES = saved  # type: ignore[misc]
