"""Template context shared by every page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from dashboard.access.roles import is_operator


def roles(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    return {"is_operator": is_operator(user) if user is not None else False}
