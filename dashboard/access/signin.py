"""The sign-in page: local accounts (throttled by django-axes) and, when configured, single sign-on."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class LoginView(auth_views.LoginView):
    """Django's sign-in view, offering the OpenID Connect provider's button when one is configured."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["oidc_enabled"] = settings.WND_OIDC_ENABLED
        context["oidc_label"] = settings.WND_OIDC_LABEL
        return context


def locked_out(request: HttpRequest, credentials: Any = None, *args: Any, **kwargs: Any) -> HttpResponse:
    """django-axes' answer to a sign-in attempt past the failure limit: the page, with why, as a 429."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return render(
        request,
        "registration/login.html",
        {
            "locked_out": (
                f"Too many failed sign-ins for this user from your address: try again in {minutes} minutes "
                "or ask an administrator (python manage.py axes_reset_username NAME)."
            ),
            "oidc_enabled": settings.WND_OIDC_ENABLED,
            "oidc_label": settings.WND_OIDC_LABEL,
        },
        status=429,
    )
