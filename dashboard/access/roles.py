"""Two roles: viewers read every page; operators also run diagnostics and manage tokens.

An operator is a superuser or a member of the ``operator`` group; any other
signed-in user is a viewer.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render

OPERATOR_GROUP = "operator"
VIEWER_GROUP = "viewer"


def is_operator(user: Any) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    return bool(user.is_superuser or user.groups.filter(name=OPERATOR_GROUP).exists())


def operator_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Signed in and an operator; a viewer gets a 403 page that says why."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not is_operator(request.user):
            return render(
                request,
                "dashboard/forbidden.html",
                {"reason": "This action needs the operator role. Ask an administrator to add you to it."},
                status=403,
            )
        return view(request, *args, **kwargs)

    return wrapper
