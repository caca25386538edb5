"""Helpers for signaling tests: open a socket, say hello, read messages."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient


async def connect(
    client: TestClient, token: str, **hello: Any
) -> tuple[ClientWebSocketResponse, dict[str, Any]]:
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "token": token, "id": "h", **hello})
    welcome = await receive(ws)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


async def receive(ws: ClientWebSocketResponse, timeout: float = 2.0) -> dict[str, Any]:
    message: dict[str, Any] = await asyncio.wait_for(ws.receive_json(), timeout)
    return message


async def request(ws: ClientWebSocketResponse, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send_json(message)
    return await receive(ws)


async def nothing_more(ws: ClientWebSocketResponse) -> None:
    """Assert no message arrives (ping/pong is the fence)."""
    reply = await request(ws, {"type": "ping", "id": "fence"})
    assert reply == {"type": "pong", "re": "fence"}


async def call(ws: ClientWebSocketResponse, message: dict[str, Any]) -> dict[str, Any]:
    """Send a request with an id and return its reply, skipping pushes."""
    message = {**message, "id": message.get("id", "call")}
    await ws.send_json(message)
    while True:
        reply = await receive(ws)
        if reply.get("re") == message["id"]:
            return reply
