"""The bearer-token check every mutating route depends on (one definition for every router)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vudo.api.models import ErrorOut

#: The OpenAPI responses of a route behind :func:`token_check`.
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}}


def token_check(token_matches: Callable[[str], bool]) -> Callable[..., None]:
    """A FastAPI dependency: 401 without a bearer token, 403 with a wrong one."""
    bearer = HTTPBearer(auto_error=False, description="the token in <data_dir>/api-token")

    def require_token(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if credentials is None or not credentials.credentials:
            raise HTTPException(401, "missing bearer token: send `Authorization: Bearer <token>` (token file: <data_dir>/api-token)",
                                headers={"WWW-Authenticate": "Bearer"})
        if not token_matches(credentials.credentials.strip()):
            raise HTTPException(403, "wrong bearer token for this node")

    return require_token
