"""Domain errors of the control plane.

Handlers and the store raise these; ``server.middleware`` translates them to
HTTP (``{"error": {"code", "message"}}``) in one place, and the signaling
loop translates them to ``error`` messages.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class: an error whose message is safe to show to the client."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(DomainError):
    """The request cannot be read at all (e.g. the body is not JSON)."""

    status = 400
    code = "bad_request"


class Unauthorized(DomainError):
    """No credentials, or credentials that are wrong, forged or expired."""

    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    """Valid credentials whose role may not do this."""

    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The request clashes with the current state (e.g. a second live session)."""

    status = 409
    code = "conflict"


class TooLarge(DomainError):
    status = 413
    code = "too_large"


class Invalid(DomainError):
    """A well-formed request with a bad value; ``field`` names it (or is None)."""

    status = 422
    code = "invalid"

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
