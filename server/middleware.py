"""The one place where errors become HTTP responses, and admin auth for /api/.

Error body: ``{"error": {"code": ..., "message": ...}}`` (plus ``field`` for
``invalid``). One log line per request error; a traceback for bugs.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from . import library, tokens
from .errors import DomainError, Forbidden, Invalid, Unauthorized
from .keys import SETTINGS

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
PUBLIC_API_PATHS = frozenset({"/api/health"})

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
}


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as e:
        log.info("x %s %s -> %d %s", request.method, request.path, e.status, e.message)
        extra = {"field": e.field} if isinstance(e, Invalid) else {}
        return error_response(e.status, e.code, e.message, **extra)
    except web.HTTPRequestEntityTooLarge:
        message = f"request body is larger than {MAX_BODY_BYTES} bytes"
        log.info("x %s %s -> 413 %s", request.method, request.path, message)
        return error_response(413, "too_large", message)
    except web.HTTPException as e:
        if e.status < 400 or not request.path.startswith("/api/"):
            raise
        if e.status == 404:
            message = f"no such endpoint: {request.method} {request.path}"
        elif e.status == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        else:
            message = e.reason
        log.info("x %s %s -> %d %s", request.method, request.path, e.status, message)
        return error_response(e.status, HTTP_CODES.get(e.status, "error"), message)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("x %s %s -> 500", request.method, request.path)
        return error_response(500, "internal", "internal error")


@web.middleware
async def admin_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/") and request.path not in PUBLIC_API_PATHS:
        # a lesson's file may open with its ?access= token instead (a <video> sends no header)
        if not library.authenticate_access(request):
            authenticate_admin(request)
    return await handler(request)


def authenticate_admin(request: web.Request) -> None:
    """``Authorization: Bearer <admin key>`` or ``Bearer <admin token>``."""
    settings = request.app[SETTINGS]
    header = request.headers.get("Authorization")
    if header is None:
        raise Unauthorized("missing Authorization header")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthorized("Authorization header must be 'Bearer <admin key or token>'")
    admin_key = settings.admin_key or ""
    if admin_key and hmac.compare_digest(credential.encode(), admin_key.encode()):
        return
    if credential.count(".") != 2:
        raise Unauthorized("admin key is invalid")
    claims = tokens.verify(settings.token_secret or "", credential)
    if claims.role != "admin":
        raise Forbidden(f"an admin token is required; this token's role is {claims.role}")
