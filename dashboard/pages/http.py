"""The request type our views receive: signed in (login_required) and seen by django-htmx."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class AuthedRequest(HttpRequest):
    htmx: HtmxDetails
    user: User  # views taking it are behind login_required
