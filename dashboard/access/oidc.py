"""Sign-in with OpenID Connect (mozilla-django-oidc): the provider's groups decide the role.

On when ``WND_OIDC_CLIENT_ID`` is set (see ``.env.example``). At every sign-in, the group
claim (``WND_OIDC_GROUPS_CLAIM``, ``groups`` by default: Entra ID sends group object ids,
Okta group names, Keycloak group paths such as ``/k8s-ops``) is compared with
``WND_OIDC_OPERATOR_GROUPS`` and ``WND_OIDC_VIEWER_GROUPS``:

- a member of an operator group gets the ``operator`` group here (``dashboard.access.roles``);
- a member of a viewer group only, the ``viewer`` group;
- anyone else is refused, unless no group is configured at all (then every user the
  provider signs in is a viewer).

The role follows the provider: it is set again at each sign-in, so removing someone from
the provider's group takes the role away here too. Accounts made here are never staff or
superusers. The user name is the ``preferred_username`` claim (else ``email``, else ``sub``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.http import Http404, HttpRequest, HttpResponse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from dashboard.access.roles import OPERATOR_GROUP, VIEWER_GROUP


def _names(values: Iterable[str]) -> set[str]:
    # Keycloak sends group paths ("/k8s-ops"); the settings may name them with or without the slash.
    return {v.strip().lstrip("/").lower() for v in values if v.strip()}


def claimed_groups(claims: dict[str, Any]) -> set[str]:
    raw = claims.get(settings.WND_OIDC_GROUPS_CLAIM) or []
    if isinstance(raw, str):
        raw = [raw]
    return _names(str(v) for v in raw if isinstance(v, (str, int)))


def role_of(claims: dict[str, Any]) -> str | None:
    """``operator``, ``viewer``, or None (not allowed in) for these claims."""
    groups = claimed_groups(claims)
    operators = _names(settings.WND_OIDC_OPERATOR_GROUPS)
    viewers = _names(settings.WND_OIDC_VIEWER_GROUPS)
    if groups & operators:
        return OPERATOR_GROUP
    if groups & viewers or not (operators or viewers):
        return VIEWER_GROUP
    return None


def username_of(claims: dict[str, Any]) -> str:
    for name in ("preferred_username", "email", "sub"):
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()[:150]
    return ""


class RoleMappingBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, with users found by name and roles from the group claim."""

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The ID token's claims, then the userinfo endpoint's (Entra ID puts groups in the ID token only)."""
        claims = dict(payload)
        if settings.OIDC_OP_USER_ENDPOINT:
            claims.update(super().get_userinfo(access_token, id_token, payload))
        return claims

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(username_of(claims)) and role_of(claims) is not None

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return self.UserModel.objects.filter(username=username_of(claims))

    def create_user(self, claims: dict[str, Any]) -> Any:
        user = self.UserModel.objects.create_user(username_of(claims), email=claims.get("email") or "")
        return self.update_user(user, claims)

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        role = role_of(claims)
        operator, _ = Group.objects.get_or_create(name=OPERATOR_GROUP)
        viewer, _ = Group.objects.get_or_create(name=VIEWER_GROUP)
        if role == OPERATOR_GROUP:
            user.groups.add(operator)
            user.groups.remove(viewer)
        else:
            user.groups.add(viewer)
            user.groups.remove(operator)
        return user


def _only_when_enabled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.WND_OIDC_ENABLED:
            raise Http404("single sign-on is not configured")
        return view(request, *args, **kwargs)

    return wrapper


authenticate = _only_when_enabled(OIDCAuthenticationRequestView.as_view())
callback = _only_when_enabled(OIDCAuthenticationCallbackView.as_view())
