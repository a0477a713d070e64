"""Bearer-token check for the write endpoints (constant-time comparison)."""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .problems import ProblemError

bearer = HTTPBearer(auto_error=False, description="the pipeline's API token (write endpoints only)")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="streampipeline"'}


def token_matches(expected: str | None, given: str | None) -> bool:
    """True only when both are set and equal; the time taken does not depend on where they differ."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Raise 401 unless the request carries the configured bearer token."""
    expected = request.app.state.config.token
    if expected is None:
        raise ProblemError(
            401, "writes are disabled: the service has no API token configured", headers=_CHALLENGE
        )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ProblemError(401, "this endpoint needs 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    if not token_matches(expected, credentials.credentials):
        raise ProblemError(401, "the bearer token is not valid", headers=_CHALLENGE)
