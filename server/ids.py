"""Identifiers: short random url-safe strings."""

from __future__ import annotations

import secrets


def new_id() -> str:
    """Eleven url-safe characters (64 random bits)."""
    return secrets.token_urlsafe(8)
